"""python -m cli.dense: a detector's every box, or a segmenter's every class, explained for images.

    ./studio dense photo.jpg --model fasterrcnn_mobilenet_v3_large_fpn --out boxes/
    ./studio dense --scene 3 --model shapes-detector --method gradcam,eigencam,rise
    ./studio dense --scene 3 --model shapes-segmenter

For a detector it writes, per image, ``detections.json`` (boxes, classes, scores) and per box
above ``--threshold`` and per method the overlay PNG and the ``.npy`` map (``box01_gradcam.png``,
...); for a segmenter ``labels.png`` (the predicted labels in colour) and per predicted class its
map (the class's logits summed over its predicted mask). ``--scene N`` takes scene N of the
held-out multi-object shapes world instead of a file. A progress bar runs on stderr; bad input
exits with status 1 and a one-line reason.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cli.dense", description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="*", type=Path, help="image files (or --scene)")
    p.add_argument("--scene", type=int, action="append", default=[],
                   help="a scene of the held-out multi-object shapes world (repeatable)")
    p.add_argument("--model", default="shapes-detector", help="a detection or segmentation model of the registry")
    p.add_argument("--method", default="gradcam,eigencam", help="comma-separated methods (rise: D-RISE for a box)")
    p.add_argument("--layer", default=None, help="dotted layer name (default: the model's)")
    p.add_argument("--threshold", type=float, default=0.3, help="a detector's boxes scoring below it are skipped")
    p.add_argument("--masks", type=int, default=500, help="D-RISE / RISE masks")
    p.add_argument("--out", type=Path, default=Path("dense-out"))
    p.add_argument("--alpha", type=float, default=0.5)
    return p


def _inputs(args, loaded):
    from PIL import Image

    from evaluation import dense as ev
    from explainers import images
    from model_zoo.shapes.world import make_scene
    for i in args.scene:
        scene = make_scene(ev.HELDOUT_SEED, i, "multi")
        yield f"scene_{i}", loaded.preprocess.prepare(Image.fromarray(scene.image))
    for path in args.images:
        try:
            image = images.open_image(path.read_bytes(), name=path.name)
        except OSError as err:
            raise ValueError(f"cannot read {path}: {err.strerror or err}") from None
        yield path.stem, loaded.preprocess.prepare(image)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import torch
    from PIL import Image
    from tqdm import tqdm

    import explainers
    import model_zoo
    from explainers import images, render
    try:
        spec = model_zoo.get_spec(args.model)
        if spec.task not in ("detection", "segmentation"):
            raise ValueError(f"{args.model} is a {spec.task} model; this command takes a detector or a segmenter "
                             "(./studio cli explains classifiers)")
        if not args.images and not args.scene:
            raise ValueError("give image files or --scene N")
        methods = [m.strip() for m in args.method.split(",") if m.strip()]
        for m in methods:
            explainers.get_method(m)
        loaded = model_zoo.load(args.model, download=False)
        layer = args.layer or loaded.default_layer
        work = list(_inputs(args, loaded))
    except (KeyError, ValueError, model_zoo.ZooError, images.ImageError) as err:
        print(f"error: {str(err).strip(chr(39))}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    names = loaded.categories
    written = 0
    for stem, (view, x) in tqdm(work, desc=args.model, unit="image", file=sys.stderr):
        x = x.unsqueeze(0)
        folder = args.out / stem
        folder.mkdir(exist_ok=True)
        Image.fromarray(view).save(folder / "image.png")
        with torch.no_grad():
            out = loaded.model(x)
        cap = explainers.Capture(loaded.model, x, layer=layer) if any(
            explainers.get_method(m).needs_layer for m in methods) else None

        def explain(method, target):
            """A layer method from the image's one kept forward; the others (RISE, the pixel
            methods) run their own passes."""
            if explainers.get_method(method).needs_layer:
                return cap.explain(method, target)
            options = {"masks": args.masks, "cell": max(2, view.shape[0] // 8)} if method == "rise" else {}
            return explainers.explain(loaded.model, x, method=method, target=target, **options)
        if spec.task == "detection":
            d = out[0]
            keep = [k for k in np.argsort(-d["scores"].numpy(), kind="stable") if d["scores"][k] >= args.threshold]
            rows = []
            for n, k in enumerate(keep, 1):
                label = int(d["labels"][k])
                box = tuple(float(v) for v in d["boxes"][k])
                target = explainers.DetectionScore(label, box, name=names[label])
                rows.append({"box": n, "label": names[label], "score": float(d["scores"][k]), "xyxy": box})
                for m in methods:
                    e = explain(m, target)
                    np.save(folder / f"box{n:02d}_{m}.npy", e.attribution)
                    render.picture(view, e.attribution, args.alpha).save(folder / f"box{n:02d}_{m}.png")
                    written += 1
            (folder / "detections.json").write_text(json.dumps({"model": args.model, "threshold": args.threshold,
                                                                "layer": layer, "boxes": rows}, indent=2))
        else:
            pred = out[0].argmax(0).numpy()
            Image.fromarray(render.label_overlay(view, pred)).save(folder / "labels.png")
            rows = []
            for c in (int(c) for c in np.unique(pred) if c != 0):
                target = explainers.SegmentationRegion(c, pred == c, name=names[c])
                rows.append({"class": names[c], "pixels": int((pred == c).sum())})
                for m in methods:
                    e = explain(m, target)
                    np.save(folder / f"{names[c]}_{m}.npy", e.attribution)
                    render.picture(view, e.attribution, args.alpha).save(folder / f"{names[c]}_{m}.png")
                    written += 1
            (folder / "classes.json").write_text(json.dumps({"model": args.model, "layer": layer,
                                                             "classes": rows}, indent=2))
    print(f"{len(work)} image(s), {written} map(s) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
