"""Throughput and memory of the evaluation at N and 2N images, each run in a fresh process:
images per second (model loading excluded) and the process's peak resident memory. Streaming
means the rate stays and the peak stays flat.

    ./studio bench evaluation --n 50                       # the full metric set, shapes-resnet
    ./studio bench evaluation --protocol loc --n 64        # localisation and pointing (evaluation.scale),
                                                           # shapes-resnet and resnet50 (random weights, 224 px)

The localisation-and-pointing protocol is set beside the machine's limit for it, measured in the
same process: a batched forward of the same batch size (autograd recording from the layer on
only) plus one backward to the layer, what Grad-CAM of one target per image cannot do without;
median of 5.
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
from cli.evaluate import main
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


LOC_CHILD = """
import json, resource, statistics, sys, time
import torch
import model_zoo, explainers
from evaluation import scale
model_id, weights, n, batch, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
loaded = model_zoo.load(model_id, None if weights == "-" else weights)
items = scale.ShapesItems(n, 20000, "single", loaded.preprocess)
scale.loc_pointing(loaded, scale.ShapesItems(batch, 30000, "single", loaded.preprocess), batch=batch)  # warm-up
report = scale.loc_pointing(loaded, items, batch=batch, workers=workers)
x = torch.stack([items[i][2] for i in range(batch)])
layer = explainers.resolve_layer(loaded.model, loaded.default_layer)
def hook(m, a, out):  # autograd from the layer on, as any Grad-CAM needs at least
    got["a"] = out.detach().requires_grad_(True)
    torch.set_grad_enabled(True)
    return got["a"]
def limit():
    h = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = loaded.model(x)
            torch.autograd.grad(out.gather(1, out.argmax(1, keepdim=True)).sum(), got["a"])
    finally:
        h.remove()
got = {}
times = []
for _ in range(5):
    t = time.perf_counter(); limit(); times.append(time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT", json.dumps({"n": n, "seconds": report["seconds"], "images": report["images"],
      "limit_images_per_s": batch / statistics.median(times), "peak_mib": peak / 1024}))
"""


def measure_loc(model: str, weights: str, n: int, batch: int, workers: int) -> dict:
    done = subprocess.run([sys.executable, "-c", LOC_CHILD, model, weights, str(n), str(batch), str(workers)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    r = json.loads(next(l for l in done.stdout.splitlines() if l.startswith("RESULT")).split(" ", 1)[1])
    r["images_per_s"] = r["images"] / r["seconds"]
    return r


def main_loc(args) -> int:
    print(f"localisation and pointing (evaluation.scale), batch {args.batch}, {args.workers} DataLoader "
          "worker(s), one fresh process per run; limit: batched forward + one backward to the layer")
    print("| model | images | images/s | limit images/s | share of the limit | seconds | peak memory |")
    print("|---|---|---|---|---|---|---|")
    for model, weights in (("shapes-resnet", "-"), ("resnet50", "untrained")):
        rows = []
        for n in (args.n, 2 * args.n):
            rows.append(measure_loc(model, weights, n, args.batch, args.workers))
            r = rows[-1]
            print(f"| {model}{' (random weights, 224 px)' if weights != '-' else ' (64 px)'} | {n} | "
                  f"{r['images_per_s']:.1f} | {r['limit_images_per_s']:.1f} | "
                  f"{r['images_per_s'] / r['limit_images_per_s']:.2f} | {r['seconds']:.1f} | {r['peak_mib']:.0f} MiB |",
                  flush=True)
        a, b = rows
        print(f"|  | 2N / N | rate {b['images_per_s'] / a['images_per_s']:.2f} | | | time "
              f"{b['seconds'] / a['seconds']:.2f} | peak {b['peak_mib'] / a['peak_mib']:.3f} |", flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench evaluation", description=__doc__.split("\n\n")[0])
    p.add_argument("--protocol", choices=["full", "loc"], default="full")
    p.add_argument("--model", default="shapes-resnet")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--data", default="shapes:single")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=None, help="default: evaluation.scale.auto_workers()")
    args = p.parse_args(argv)
    if args.protocol == "loc":
        if args.workers is None:
            from evaluation.scale import auto_workers
            args.workers = auto_workers()
        return main_loc(args)
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
