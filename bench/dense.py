"""D-RISE's cost for a detector, as forward passes and seconds and as a ratio to a plain no-grad
forward pass of the same detector in the same run, beside Grad-CAM of the same detection:

    ./studio bench dense                                   # shapes-detector and Faster R-CNN
    ./studio bench dense --masks 1000 --repeats 3

The shipped ``shapes-detector`` runs on a held-out scene (64 x 64); torchvision's
``fasterrcnn_mobilenet_v3_large_fpn`` with random weights (``untrained``: a pass costs the same
whatever the weights; its score threshold set to 0 so a random head still detects) on a
512 x 512 image. Medians over repeats.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

import explainers
import model_zoo


def _input(model_id: str, loaded):
    from evaluation import dense as ev
    from model_zoo.shapes.world import make_scene
    if model_id == "shapes-detector":
        return ev.scene_batch([make_scene(ev.HELDOUT_SEED, 0, "multi")], loaded.preprocess)
    torch.manual_seed(0)
    size = loaded.preprocess.crop
    return torch.rand(1, 3, size, size)


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(model_id: str, masks: int, cell: int | None, batch: int, repeats: int) -> dict:
    loaded = model_zoo.load(model_id) if model_id == "shapes-detector" else model_zoo.load(model_id, "untrained")
    model = loaded.model
    for part in (model, getattr(model, "roi_heads", None)):
        if part is not None and hasattr(part, "score_thresh") and model_id != "shapes-detector":
            part.score_thresh = 0.0
    x = _input(model_id, loaded)
    with torch.no_grad():
        d = model(x)[0]
    k = int(d["scores"].argmax())
    target = explainers.DetectionScore(int(d["labels"][k]), tuple(d["boxes"][k].tolist()))
    cell = cell or max(2, x.shape[-1] // 8)

    def forward():
        with torch.no_grad():
            model(x)

    forward()
    fwd = _timed(forward, max(repeats, 3))
    gradcam = _timed(lambda: explainers.explain(model, x, method="gradcam", layer=loaded.default_layer,
                                                target=target), repeats)
    drise = _timed(lambda: explainers.explain(model, x, method="rise", target=target, masks=masks, cell=cell,
                                              batch_size=batch), repeats)
    return {"model": model_id, "size": list(x.shape[-2:]), "masks": masks, "cell": cell, "batch_size": batch,
            "forward_s": fwd, "gradcam_s": gradcam, "gradcam_ratio": gradcam / fwd, "drise_s": drise,
            "drise_forwards": masks, "drise_ratio": drise / fwd, "drise_s_per_mask": drise / masks}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench dense", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="shapes-detector,fasterrcnn_mobilenet_v3_large_fpn")
    p.add_argument("--masks", type=int, default=500)
    p.add_argument("--cell", type=int, default=None, help="D-RISE's cell in pixels (default: an eighth of the image)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("bench/results/dense.json"))
    args = p.parse_args(argv)
    rows = []
    for model_id in tqdm([m for m in args.models.split(",") if m], desc="bench dense", unit="model", file=sys.stderr):
        rows.append(measure(model_id, args.masks, args.cell, args.batch, args.repeats))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                                    "machine": platform.machine(), "rows": rows}, indent=2))
    print("| detector | image | forward | Grad-CAM | D-RISE (masks) | D-RISE |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| `{r['model']}` | {r['size'][0]}x{r['size'][1]} | {r['forward_s'] * 1000:.1f} ms | "
              f"{r['gradcam_ratio']:.2f}x | {r['drise_forwards']} forwards, {r['drise_s']:.1f} s | "
              f"{r['drise_ratio']:.0f}x |")
    return 0
