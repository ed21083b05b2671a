"""Speed of the explainers as ratios to a plain no-grad forward pass of the same model, measured
in the same run, next to the peer libraries captum, pytorch-grad-cam and torchcam.

    ./studio bench                       # resnet50, vgg16, densenet121 at 224x224 on the CPU
    ./studio bench --models resnet50 --repeats 5

Timings are medians over interleaved repeats (forward, then every task, in turn), so drift in
the machine's speed touches all tasks alike. Weights are random (``untrained``): the cost of a
pass does not depend on the weight values, and ImageNet weights need a download. Retained memory
is the bytes of tensors still alive after a call returns (and its result is dropped), found
through the garbage collector."""
from __future__ import annotations

import argparse
import copy
import gc
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import explainers
from explainers import render as render_
import model_zoo

MID_LAYER = {"resnet50": "layer2"}


def _live_tensor_bytes() -> int:
    gc.collect()
    total, seen = 0, set()
    for obj in gc.get_objects():
        try:
            if isinstance(obj, torch.Tensor) and not obj.is_meta:
                storage = obj.untyped_storage()
                key = storage.data_ptr()
                if key not in seen:
                    seen.add(key)
                    total += storage.nbytes()
        except Exception:
            continue
    return total


# the gradient CAM variants and Eigen-CAM: one forward, at most one backward each
VARIANTS = ("gradcam_pp", "xgradcam", "hirescam", "layercam", "eigencam")


def _ours(model, layer, x, top5):
    tasks = {
        "gradcam_top1": lambda: explainers.explain(model, x, layer=layer, target=top5[0]),
        "gradcam_top5": lambda: explainers.explain(model, x, layer=layer, target=top5),
        "guided_backprop": lambda: explainers.explain(model, x, method="guided_backprop", target=top5[0]),
        "guided_gradcam": lambda: explainers.explain(model, x, method="guided_gradcam", layer=layer, target=top5[0]),
    }
    for m in VARIANTS:
        tasks[m] = lambda m=m: explainers.explain(model, x, method=m, layer=layer, target=top5[0])
    return tasks


def _captum(model, layer_module, x, top5):
    from captum.attr import GuidedBackprop, GuidedGradCam, LayerAttribution, LayerGradCam

    lgc = LayerGradCam(model, layer_module)
    size = x.shape[-2:]
    x5 = x.expand(5, -1, -1, -1)

    def top1():
        return LayerAttribution.interpolate(lgc.attribute(x, target=top5[0], relu_attributions=True), size, "bilinear")

    def five():  # captum's way to get several classes: one sample per class in a batch
        return LayerAttribution.interpolate(lgc.attribute(x5, target=top5, relu_attributions=True), size, "bilinear")

    return {
        "gradcam_top1": top1,
        "gradcam_top5": five,
        "guided_backprop": lambda: GuidedBackprop(model).attribute(x, target=top5[0]),
        "guided_gradcam": lambda: GuidedGradCam(model, layer_module).attribute(x, target=top5[0]),
    }


def _pytorch_grad_cam(model, layer_module, x, top5):
    from pytorch_grad_cam import GradCAM, GuidedBackpropReLUModel
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = GradCAM(model=model, target_layers=[layer_module])
    # GuidedBackpropReLUModel swaps the model's ReLU modules for new ones after each call, which
    # drops GradCAM's hook when the layer is a ReLU (VGG's features.29): give it its own copy
    gbp = GuidedBackpropReLUModel(model=copy.deepcopy(model), device="cpu")
    x5 = x.expand(5, -1, -1, -1).contiguous()

    def guided_gradcam():  # the library's recipe: Grad-CAM and Guided Backprop, multiplied
        heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(top5[0])])[0]
        return gbp(x, target_category=top5[0]) * heat[..., None]

    import pytorch_grad_cam as pgc
    variants = {name: cls(model=model, target_layers=[layer_module]) for name, cls in (
        ("gradcam_pp", pgc.GradCAMPlusPlus), ("xgradcam", pgc.XGradCAM), ("hirescam", pgc.HiResCAM),
        ("layercam", pgc.LayerCAM), ("eigencam", pgc.EigenCAM))}
    tasks = {
        "gradcam_top1": lambda: cam(input_tensor=x, targets=[ClassifierOutputTarget(top5[0])]),
        "gradcam_top5": lambda: cam(input_tensor=x5, targets=[ClassifierOutputTarget(c) for c in top5]),
        "guided_backprop": lambda: gbp(x, target_category=top5[0]),
        "guided_gradcam": guided_gradcam,
    }
    for name, extractor in variants.items():
        tasks[name] = lambda e=extractor: e(input_tensor=x, targets=[ClassifierOutputTarget(top5[0])])
    return tasks, [cam, *variants.values()]


def _torchcam(model, layer_name, x, top5):
    from torchcam.methods import GradCAM, GradCAMpp, LayerCAM, XGradCAM

    def run(classes, kind=GradCAM):
        with kind(model, target_layer=layer_name, input_shape=tuple(x.shape[1:])) as extractor:
            scores = model(x)
            maps = [extractor(c, scores, retain_graph=i < len(classes) - 1)[0]
                    for i, c in enumerate(classes)]
        return [F.interpolate(m[:, None], size=x.shape[-2:], mode="bilinear") for m in maps]

    return {"gradcam_top1": lambda: run(top5[:1]), "gradcam_top5": lambda: run(top5),
            "gradcam_pp": lambda: run(top5[:1], GradCAMpp), "xgradcam": lambda: run(top5[:1], XGradCAM),
            "layercam": lambda: run(top5[:1], LayerCAM)}


def _dashboard(model, layer, x):
    """What the Explore page does for a new image: the kept forward pass (with the pixel graph,
    so Guided Backprop can follow), the Grad-CAM and counterfactual maps and their overlays
    (the first maps on screen); then the two pixel-space maps; and, as the yardstick, a plain
    forward plus the same rendering."""
    view = np.random.default_rng(0).integers(0, 256, (x.shape[-2], x.shape[-1], 3), dtype=np.uint8)

    def render(*maps):
        return [render_.overlay(view, m01) for m01 in render_.normalize(maps, "per_map")]

    def first_maps():
        capture = explainers.Capture(model, x, layer=layer, pixels=True)
        top1 = int(capture.output[0].argmax())
        shown = render(capture.explain("gradcam", top1).attribution,
                       capture.explain("counterfactual", top1).attribution)
        return capture, top1, shown

    def all_maps():
        capture, top1, shown = first_maps()
        for method in ("guided_backprop", "guided_gradcam"):
            shown.append(render_.pixel_image(capture.explain(method, top1).attribution))
        return shown

    def forward_and_render():
        with torch.no_grad():
            model(x)
        return render(np.zeros(view.shape[:2], np.float32), np.zeros(view.shape[:2], np.float32))

    return {"dashboard_first_maps": first_maps, "dashboard_all_four_maps": all_maps,
            "dashboard_forward_plus_rendering": forward_and_render}


def bench_model(model_id: str, repeats: int, size: int, progress) -> dict:
    loaded = model_zoo.load(model_id, model_zoo.UNTRAINED)
    model, layer = loaded.model, loaded.default_layer
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        top5 = model(x)[0].topk(5).indices.tolist()

    def forward():
        with torch.no_grad():
            return model(x)

    def input_gradient():  # the floor for any guided method: autograd forward + backward to x
        xi = x.detach().requires_grad_(True)
        return torch.autograd.grad(model(xi)[0, top5[0]], xi)[0]

    tasks: dict[tuple[str, str], callable] = {("forward", "plain no-grad forward"): forward}
    tasks[("floor", "guided_backprop")] = input_gradient
    tasks[("floor", "guided_gradcam")] = input_gradient
    for name, fn in _ours(model, layer, x, top5).items():
        tasks[("ours", name)] = fn
    capture = explainers.Capture(model, x, layer=layer)  # made once: the dashboard's cached forward
    switch = iter(range(10**9))
    tasks[("ours", "gradcam_class_switch")] = lambda: capture.explain("gradcam", top5[next(switch) % 5])
    family = ("gradcam", *VARIANTS)
    turn = iter(range(10**9))
    # switching among the gradient CAMs (and Eigen-CAM) on the kept forward: a backward at most
    tasks[("ours", "cam_method_switch")] = lambda: capture.explain(family[next(turn) % len(family)], top5[0])
    for name, fn in _dashboard(model, layer, x).items():
        tasks[("ours", name)] = fn
    if model_id in MID_LAYER:
        mid = MID_LAYER[model_id]
        tasks[("ours", f"gradcam_{mid}")] = lambda: explainers.explain(model, x, layer=mid, target=top5[0])
    keep_alive = []
    for peer, factory in (("captum", _captum), ("pytorch-grad-cam", _pytorch_grad_cam), ("torchcam", _torchcam)):
        twin = copy.deepcopy(model)  # peers register their own hooks: keep them off our model
        target_layer = layer if peer == "torchcam" else dict(twin.named_modules())[layer]
        try:
            made = factory(twin, target_layer, x, top5)
        except Exception as err:  # a peer that cannot run this model is reported, not fatal
            tasks[(peer, "error")] = str(err).splitlines()[0]
            continue
        if isinstance(made, tuple):
            made, holders = made
            keep_alive.extend(holders)
        for name, fn in made.items():
            tasks[(peer, name)] = fn

    runnable = {k: v for k, v in tasks.items() if callable(v)}
    errors = {k[0]: v for k, v in tasks.items() if not callable(v)}
    times: dict[tuple[str, str], list[float]] = {k: [] for k in runnable}
    for key, fn in list(runnable.items()):  # warm-up; drop what fails
        try:
            fn()
        except Exception as err:
            errors[f"{key[0]}:{key[1]}"] = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
            del runnable[key], times[key]
    progress.total = (progress.total or 0) + repeats * len(runnable)
    progress.refresh()
    for _ in range(repeats):
        for key, fn in runnable.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
            progress.update(1)
    forward_s = statistics.median(times[("forward", "plain no-grad forward")])

    memory = {}
    for key, fn in runnable.items():
        if key[0] == "forward":
            continue
        before = _live_tensor_bytes()
        try:
            result = fn()
        except Exception as err:
            errors[f"{key[0]}:{key[1]} (memory run)"] = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
            continue
        del result
        memory[f"{key[0]}:{key[1]}"] = _live_tensor_bytes() - before

    rows = []
    for (lib, task), ts in times.items():
        if lib == "forward":
            continue
        med = statistics.median(ts)
        rows.append({"library": lib, "task": task, "ms": round(med * 1000, 1),
                     "ratio": round(med / forward_s, 3),
                     "retained_bytes": memory.get(f"{lib}:{task}")})
    return {"model": model_id, "layer": layer, "forward_ms": round(forward_s * 1000, 1),
            "rows": rows, "errors": errors}


def _table(results: list[dict]) -> str:
    libs = ["ours", "captum", "pytorch-grad-cam", "torchcam", "floor"]
    lines = []
    for res in results:
        lines.append(f"\n{res['model']} (layer {res['layer']}), forward {res['forward_ms']} ms = 1.00x")
        lines.append("| task | " + " | ".join(libs) + " | ours: retained |")
        lines.append("|---|" + "---|" * (len(libs) + 1))
        tasks = dict.fromkeys(r["task"] for r in res["rows"])
        for task in tasks:
            cells = []
            for lib in libs:
                hit = [r for r in res["rows"] if r["library"] == lib and r["task"] == task]
                cells.append(f"{hit[0]['ratio']:.2f}x" if hit else "-")
            mine = [r for r in res["rows"] if r["library"] == "ours" and r["task"] == task]
            kept = f"{mine[0]['retained_bytes'] / 2**20:.2f} MB" if mine and mine[0]["retained_bytes"] is not None else "-"
            lines.append(f"| {task} | " + " | ".join(cells) + f" | {kept} |")
        by_task = {r["task"]: r for r in res["rows"] if r["library"] == "ours"}
        if "dashboard_first_maps" in by_task:
            base = by_task["dashboard_forward_plus_rendering"]["ms"]
            lines.append(f"  new image in the dashboard: first maps (Grad-CAM, counterfactual) "
                         f"{by_task['dashboard_first_maps']['ms'] / base:.2f}x, all four maps "
                         f"{by_task['dashboard_all_four_maps']['ms'] / base:.2f}x a forward pass plus rendering "
                         f"({base} ms)")
        for where, err in res["errors"].items():
            lines.append(f"  ({where} could not run: {err})")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluation"]:  # ./studio bench evaluation ...
        from bench import evaluation
        return evaluation.main(argv[1:])
    if argv[:1] == ["recent"]:  # ./studio bench recent: FinerCAM, ShapleyCAM, KPCA-CAM, RISE, LeGrad beside peers
        from bench import recent
        return recent.main(argv[1:])
    if argv[:1] == ["heavy"]:  # ./studio bench heavy ...: Score-CAM, Ablation-CAM, IG, occlusion, SmoothGrad
        from bench import heavy
        return heavy.main(argv[1:])
    if argv[:1] == ["browser"]:  # ./studio bench browser ...: widget change to painted map, in Chromium
        from bench import browser
        return browser.main(argv[1:])
    if argv[:1] == ["language"]:  # ./studio bench language: the longest caption and question accepted
        from bench import language
        return language.main(argv[1:])
    if argv[:1] == ["dense"]:  # ./studio bench dense: D-RISE's cost for detectors, beside Grad-CAM
        from bench import dense
        return dense.main(argv[1:])
    if argv[:1] == ["field"]:  # ./studio bench field ...: 200 participants against PostgreSQL, with a restart
        from bench import field
        return field.main(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m bench", formatter_class=argparse.RawDescriptionHelpFormatter, description=__doc__.split("\n\n")[0],
        epilog="other benchmarks (each with its own --help):\n"
               "  heavy        Score-CAM, Ablation-CAM, Integrated Gradients, occlusion, SmoothGrad beside the peers\n"
               "  recent       FinerCAM, ShapleyCAM, KPCA-CAM, RISE, LeGrad and rollout beside Grad-CAM and the peers\n"
               "  evaluation   evaluation at scale: images/s against the machine's limit\n"
               "  browser      from a widget change to the new map painted, in headless Chromium\n"
               "  language     the longest caption and question accepted: seconds and peak memory\n"
               "  field        200 simulated participants against PostgreSQL, with a restart\n"
               "  dense        D-RISE's cost for a detector, in forwards and seconds, beside Grad-CAM")
    p.add_argument("--models", default="resnet50,vgg16,densenet121")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", type=Path, default=Path("bench/results/explainers.json"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    results = []
    with warnings.catch_warnings(), tqdm(total=0, desc="benchmark", unit="call", file=sys.stderr) as bar:
        warnings.simplefilter("ignore")  # peers warn about in-place ReLUs and input gradients
        for model_id in models:
            results.append(bench_model(model_id, args.repeats, args.size, bar))
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "machine": platform.machine(), "size": args.size, "repeats": args.repeats}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"torch {meta['torch']}, {meta['threads']} threads, {args.size}x{args.size}, "
          f"median of {args.repeats}; ratio = time / plain no-grad forward of the same model; "
          "floor = plain PyTorch input gradient (autograd forward + backward to the input)")
    print(_table(results))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
