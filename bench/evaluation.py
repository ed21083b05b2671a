"""Throughput and memory of the full evaluation (every metric, every method) on the shapes world
at N and 2N images, each run in a fresh process: images per second (model loading excluded) and
the process's peak resident memory. Streaming means the rate stays and the peak stays flat.

    ./studio bench evaluation --n 50            # N = 50 and 2N = 100, shapes-resnet
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys
from evaluation.__main__ import main
code = main(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print("PEAK_KIB", peak)
sys.exit(code)
"""


def measure(model: str, n: int, split: str, out: Path) -> dict:
    cmd = [sys.executable, "-c", CHILD, "--model", model, "--data", split, "--n", str(n), "--tolerance", "4",
           "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    peak = int(next(l for l in done.stdout.splitlines() if l.startswith("PEAK_KIB")).split()[1])
    report = json.loads(out.read_text())
    return {"n": n, "images_per_s": report["images"] / report["seconds"], "seconds": report["seconds"],
            "peak_mib": peak / 1024}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench evaluation", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes-resnet")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--data", default="shapes:single")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.n, 2 * args.n):
            rows.append(measure(args.model, n, args.data, Path(tmp) / f"r{n}.json"))
            print(f"measured N={n}", file=sys.stderr)
    print(f"{args.model} on {args.data}, all methods and metrics, one fresh process per run")
    print("| images | images/s | seconds | peak memory |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['images_per_s']:.2f} | {r['seconds']:.1f} | {r['peak_mib']:.0f} MiB |")
    a, b = rows
    print(f"rate at 2N / rate at N: {b['images_per_s'] / a['images_per_s']:.2f}; "
          f"peak at 2N / peak at N: {b['peak_mib'] / a['peak_mib']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
