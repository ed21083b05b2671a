"""The methods of 2024-26 (issue 31) beside Grad-CAM and beside the peers that have them, as
ratios to a plain no-grad forward pass of the same model in the same run:

- FinerCAM (pytorch-grad-cam 1.5.7, torchcam 0.5.0), ShapleyCAM and KPCA-CAM (pytorch-grad-cam),
  and the other gradient CAMs, against Grad-CAM itself: on a CNN (resnet50 by default);
- RISE with N masks against N forwards of masked images in batches of the same size (its floor);
- LeGrad (torchcam) and attention rollout on a ViT (vit_b_16 by default).

    ./studio bench recent                      # resnet50 and vit_b_16 at 224x224, 5 repeats
    ./studio bench recent --size 112 --masks 256 --repeats 3

Random weights (a pass costs the same whatever the weights); medians over repeats in a new random
order each (``bench.heavy.time_calls``); every peer on its own copy of the model."""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

import explainers
import model_zoo
from explainers import attention

from bench import heavy
from bench.heavy import time_calls

GRADIENT = ("gradcam", "gradcam_pp", "xgradcam", "hirescam", "layercam", "finercam", "shapleycam")


def cnn_calls(model, layer: str, x, cls: int, masks: int, batch: int) -> tuple[list, list]:
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST, ClassifierOutputTarget
    from torchcam.methods import FinerCAM, GradCAM

    calls = []
    for m in (*GRADIENT, "kpcacam", "eigencam"):
        calls.append((m, "ours", lambda m=m: explainers.explain(model, x, method=m, layer=layer, target=cls)))
    twin = copy.deepcopy(model)
    module = dict(twin.named_modules())[layer]
    finer = pgc.FinerCAM(twin, [module])
    shapley = pgc.ShapleyCAM(twin, [module])
    kpca = pgc.KPCA_CAM(twin, [module])
    gradcam = pgc.GradCAM(twin, [module])
    calls += [("gradcam", "pytorch-grad-cam", lambda: gradcam(input_tensor=x, targets=[ClassifierOutputTarget(cls)])),
              ("finercam", "pytorch-grad-cam", lambda: finer(x, target_idx=cls)),
              ("shapleycam", "pytorch-grad-cam", lambda: shapley(x, targets=[ClassifierOutputReST(cls)])),
              ("kpcacam", "pytorch-grad-cam", lambda: kpca(x, targets=[ClassifierOutputTarget(cls)]))]
    tc_twin = copy.deepcopy(model)

    def torchcam_finer():
        with FinerCAM(tc_twin, layer, input_shape=tuple(x.shape[1:]), base_method=GradCAM) as ex:
            return ex(class_idx=cls, scores=tc_twin(x))
    calls.append(("finercam", "torchcam", torchcam_finer))

    from explainers.perturbation import rise_masks

    def floor():  # N forwards of the masked images, in batches of the same size, with the masks drawn
        m = rise_masks(tuple(x.shape[-2:]), masks, 16, 0.5, 0)
        with torch.no_grad():
            for i in range(0, masks, batch):
                model(x * m[i:i + batch].unsqueeze(1))
    calls += [("rise", "ours", lambda: explainers.explain(model, x, method="rise", target=cls, masks=masks,
                                                          batch_size=batch)),
              ("rise", f"floor: {masks} forwards in batches of {batch}", floor)]
    return calls, [finer, shapley, kpca, gradcam]


def vit_calls(model, layer: str, x, cls: int) -> list:
    from torchcam.methods import LeGrad
    names = [n for n, m in model.named_modules() if n.startswith("encoder.layers.") and n.count(".") == 2]
    first = len(names) - 1  # the last block: LeGrad's and rollout's layer (Grad-CAM keeps the model's default)
    block = names[first]
    readout = attention.readout_of(model)
    twin = copy.deepcopy(model)

    def torchcam_legrad():
        with LeGrad(twin, names[first:], score_projection=lambda t: readout(t)) as ex:
            return ex(cls, twin(x), normalized=False)
    return [("gradcam (ViT)", "ours", lambda: explainers.explain(model, x, method="gradcam", layer=layer, target=cls)),
            ("legrad", "ours", lambda: explainers.explain(model, x, method="legrad", layer=block, target=cls)),
            ("legrad", "torchcam", torchcam_legrad),
            ("rollout", "ours", lambda: explainers.explain(model, x, method="rollout", layer=block, target=cls))]


def _forward(model, x):
    def forward():
        with torch.no_grad():
            return model(x)
    return forward


def run(cnn: str, vit: str | None, size: int, repeats: int, masks: int, batch: int, progress) -> dict:
    out = {"size": size, "masks": masks, "batch_size": batch, "models": {}}
    for model_id, kind in ((cnn, "cnn"), (vit, "vit")):
        if model_id is None:
            continue
        loaded = model_zoo.load(model_id, model_zoo.UNTRAINED)
        model = loaded.model
        if kind == "vit":
            with torch.no_grad():  # torchvision starts the head at zero: every gradient would be zero
                torch.nn.init.normal_(model.heads.head.weight, std=0.02)
        side = size if kind == "cnn" else loaded.preprocess.crop  # a ViT takes its own size only
        x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            cls = int(model(x).argmax())
        keep = []
        if kind == "cnn":
            calls, keep = cnn_calls(model, loaded.default_layer, x, cls, masks, batch)
        else:
            calls = vit_calls(model, loaded.default_layer, x, cls)
        calls = [("forward", "forward", _forward(model, x)), *calls]
        times, errors = time_calls(calls, repeats, progress)
        del keep
        fwd = statistics.median(times[("forward", "forward")])
        rows = [{"method": m, "library": lib, "ms": round(1000 * statistics.median(ts), 1),
                 "ratio": round(statistics.median(ts) / fwd, 3)}
                for (m, lib), ts in times.items() if m != "forward" and (m, lib) not in errors]
        out["models"][model_id] = {"size": side, "layer": loaded.default_layer, "forward_ms": round(1000 * fwd, 1), "rows": rows,
                                   "errors": {f"{m}:{lib}": e for (m, lib), e in errors.items()}}
    return out


def table(res: dict) -> str:
    lines = []
    for model_id, r in res["models"].items():
        by = {(row["method"], row["library"]): row for row in r["rows"]}
        base = by.get(("gradcam", "ours")) or by.get(("gradcam (ViT)", "ours"))
        lines += [f"{model_id} at {r['size']}x{r['size']}, layer {r['layer']}: forward {r['forward_ms']} ms = 1.00x",
                  "| method | library | x forward | / our Grad-CAM | / fastest peer |", "|---|---|---|---|---|"]
        for (m, lib), row in by.items():
            peers = [o["ms"] for (m2, lib2), o in by.items() if m2 == m and lib2 != "ours" and not lib2.startswith("floor")]
            floor = [o["ms"] for (m2, lib2), o in by.items() if m2 == m and lib2.startswith("floor")]
            rel_peer = f"{row['ms'] / min(peers):.2f}" if lib == "ours" and peers else "-"
            if lib == "ours" and floor:
                rel_peer = f"{row['ms'] / floor[0]:.2f} of the floor"
            rel_base = f"{row['ms'] / base['ms']:.2f}" if base and lib == "ours" else "-"
            lines.append(f"| {m} | {lib} | {row['ratio']:.2f}x | {rel_base} | {rel_peer} |")
        for where, err in r["errors"].items():
            lines.append(f"  ({where} could not run: {err})")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="./studio bench recent", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet50", help="the CNN (random weights)")
    p.add_argument("--vit", default="vit_b_16", help="the ViT for LeGrad and rollout ('' to skip)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--masks", type=int, default=256, help="RISE's masks")
    p.add_argument("--batch-size", type=int, default=32, help="RISE's batch (and its floor's)")
    p.add_argument("--out", type=Path, default=Path("bench/results/recent.json"))
    args = p.parse_args(argv)
    with warnings.catch_warnings(), tqdm(total=0, desc="recent methods", unit="call", file=sys.stderr) as bar:
        warnings.simplefilter("ignore")
        res = run(args.model, args.vit or None, args.size, args.repeats, args.masks, args.batch_size, bar)
    return heavy.write(res, args.out, args.repeats, table(res))


if __name__ == "__main__":
    raise SystemExit(main())
