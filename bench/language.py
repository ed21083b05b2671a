"""The longest caption and question the studio accepts, explained as the Captioning and VQA pages
explain them: seconds and the process's peak memory (README, "Security and limits").

    ./studio bench language            # shapes-captioner and shapes-vqa, one fresh process each

Each case runs in a fresh Python process, so its peak resident memory (``ru_maxrss``) is that of
the explanation alone after the imports, not what earlier cases left behind. The caption page's
work: one forward with the caption's tokens, then Grad-CAM and Guided Grad-CAM of the caption's
log-probability and of each word's (``MAX_CAPTION_WORDS`` + 1 targets). The VQA page's: one forward
with the question, Grad-CAM and Guided Grad-CAM of the top answer."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASE = r"""
import json, resource, sys, time
import torch
import explainers, model_zoo
from model_zoo.shapes import language as L
task, method = sys.argv[1], sys.argv[2]
torch.set_num_threads(2)
scene = L.make_described(20000, 0, "pair")
if task == "caption":
    loaded = model_zoo.load("shapes-captioner")
    words = (L.caption_words(scene) * 10)[:L.MAX_CAPTION_WORDS]
    text = " ".join(words)
else:
    loaded = model_zoo.load("shapes-vqa")
    words = ("what shape is the red object " * 10).split()[:L.MAX_QUESTION_WORDS]
    text = " ".join(words)
from PIL import Image
_, x = loaded.preprocess.prepare(Image.fromarray(scene.image))
x = x[None] if x.dim() == 3 else x
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if task == "caption":
    tokens = L.encode_caption(text)
    targets = [explainers.CaptionLogProb(tokens, name=text)] + [explainers.WordLogProb(tokens, i, name=w)
                                                                 for i, w in enumerate(words)]
    cap = explainers.Capture(loaded.model, x, layer=loaded.default_layer, pixels=True,
                              inputs=(tokens[:-1],))
    maps = cap.explain(method, targets)
else:
    tokens = L.encode_question(text)
    cap = explainers.Capture(loaded.model, x, layer=loaded.default_layer, pixels=True, inputs=(tokens,))
    top = int(cap.output[0].argmax())
    maps = cap.explain(method, [explainers.Answer(tokens, top)])
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"task": task, "method": method, "words": len(words), "maps": len(maps), "seconds": seconds,
                  "peak_rss_mb": peak / 1024, "rss_before_mb": base / 1024}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench language", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per case (the median is shown)")
    args = p.parse_args(argv)
    rows = []
    for task in ("caption", "vqa"):
        for method in ("gradcam", "guided_gradcam"):
            runs = []
            for _ in range(args.repeats):
                out = subprocess.run([sys.executable, "-c", CASE, task, method], capture_output=True, text=True)
                if out.returncode != 0:
                    sys.stderr.write(out.stderr)
                    return 1
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            runs.sort(key=lambda r: r["seconds"])
            mid = runs[len(runs) // 2]
            mid["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
            rows.append(mid)
            print(f"{task:8s} {method:15s} {mid['words']:3d} words, {mid['maps']:3d} maps: "
                  f"{mid['seconds']:.2f} s (median of {args.repeats}), peak {mid['peak_rss_mb']:.0f} MB "
                  f"(before the explanation {mid['rss_before_mb']:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
