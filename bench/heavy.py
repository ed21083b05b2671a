"""Forward-heavy methods against the peers at equal batch size, as ratios to a plain no-grad
forward pass of the same model in the same run: Score-CAM (pytorch-grad-cam, torchcam),
Ablation-CAM (pytorch-grad-cam), Integrated Gradients, occlusion and SmoothGrad (captum).

    ./studio bench heavy                          # resnet50 at 112x112, batch 32, 3 repeats
    ./studio bench heavy --size 224 --repeats 1

Every implementation gets the same batch size, steps, windows and samples; each peer runs on
its own copy of the model; medians over repeats, each in a new random order (a call that
follows a long one can run slower: no implementation always follows the same one). Weights are random: a pass costs
the same whatever the weights. The peers' own progress output is silenced while they are timed.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

import explainers
import model_zoo


def tasks(model, x, cls: int, score_layer: str, ablation_layer: str, batch: int, steps: int,
          patch: int, stride: int, samples: int) -> dict[str, dict[str, callable]]:
    """{method: {library: call}} at equal settings."""
    import pytorch_grad_cam as pgc
    from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchcam.methods import ScoreCAM

    twin = copy.deepcopy(model)
    modules = dict(twin.named_modules())
    target = [ClassifierOutputTarget(cls)]
    pgc_score = pgc.ScoreCAM(model=twin, target_layers=[modules[score_layer]])
    pgc_score.batch_size = batch  # pytorch-grad-cam reads it as an attribute
    pgc_ablation = pgc.AblationCAM(model=twin, target_layers=[modules[ablation_layer]], batch_size=batch)

    def torchcam_score():
        with ScoreCAM(twin, target_layer=score_layer, batch_size=batch, input_shape=tuple(x.shape[1:])) as ex:
            with torch.no_grad():
                scores = twin(x)
            return ex(class_idx=cls, scores=scores)

    sigma = 0.15 * float(x.max() - x.min())
    return {
        "scorecam": {
            "ours": lambda: explainers.explain(model, x, method="scorecam", layer=score_layer, target=cls,
                                               batch_size=batch),
            "pytorch-grad-cam": lambda: pgc_score(input_tensor=x, targets=target),
            "torchcam": torchcam_score,
        },
        "ablationcam": {
            "ours": lambda: explainers.explain(model, x, method="ablationcam", layer=ablation_layer, target=cls,
                                               batch_size=batch),
            "pytorch-grad-cam": lambda: pgc_ablation(input_tensor=x, targets=target),
        },
        "integrated_gradients": {
            "ours": lambda: explainers.explain(model, x, method="integrated_gradients", target=cls, steps=steps,
                                               batch_size=batch),
            "captum": lambda: IntegratedGradients(twin).attribute(x, target=cls, n_steps=steps,
                                                                  internal_batch_size=batch),
        },
        "occlusion": {
            "ours": lambda: explainers.explain(model, x, method="occlusion", target=cls, patch=patch, stride=stride,
                                               batch_size=batch),
            "captum": lambda: Occlusion(twin).attribute(x, sliding_window_shapes=(3, patch, patch),
                                                        strides=(3, stride, stride), target=cls,
                                                        perturbations_per_eval=batch),
        },
        "smoothgrad": {
            "ours": lambda: explainers.explain(model, x, method="smoothgrad", target=cls, samples=samples,
                                               batch_size=batch),
            "captum": lambda: NoiseTunnel(Saliency(twin)).attribute(
                x, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=batch, stdevs=sigma,
                target=cls, abs=False),
        },
    }, (pgc_score, pgc_ablation)


def time_calls(calls, repeats: int, progress) -> tuple[dict, dict]:
    """({(method, library): [seconds per repeat]}, {(method, library): why it could not run}):
    ``calls`` are (method, library, fn); a first round warms up and is not counted; each round
    runs the calls in a new random order (no implementation always follows the same one)."""
    times = {(m, lib): [] for m, lib, _ in calls}
    errors = {}
    progress.total = (progress.total or 0) + len(calls) * (repeats + 1)
    for rep in range(repeats + 1):
        order = list(calls)
        random.Random(rep).shuffle(order)
        for m, lib, fn in order:
            if (m, lib) in errors:
                progress.update(1)
                continue
            t0 = time.perf_counter()
            try:
                with contextlib.redirect_stderr(io.StringIO()):
                    fn()
            except Exception as err:  # a peer that cannot run is reported, not fatal
                errors[(m, lib)] = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
            if rep:
                times[(m, lib)].append(time.perf_counter() - t0)
            progress.update(1)
    return times, errors


def run(model_id: str, size: int, repeats: int, batch: int, steps: int, patch: int, stride: int,
        samples: int, score_layer: str, ablation_layer: str, progress) -> dict:
    loaded = model_zoo.load(model_id, model_zoo.UNTRAINED)
    model = loaded.model
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cls = int(model(x).argmax())
    table, keep = tasks(model, x, cls, score_layer, ablation_layer, batch, steps, patch, stride, samples)

    def forward():
        with torch.no_grad():
            return model(x)

    calls = [("forward", "forward", forward)] + [(m, lib, fn) for m, libs in table.items() for lib, fn in libs.items()]
    times, errors = time_calls(calls, repeats, progress)
    del keep
    fwd = statistics.median(times[("forward", "forward")])
    rows = []
    for (m, lib), ts in times.items():
        if m == "forward" or (m, lib) in errors:
            continue
        med = statistics.median(ts)
        rows.append({"method": m, "library": lib, "ms": round(1000 * med, 1), "ratio": round(med / fwd, 2)})
    return {"model": model_id, "size": size, "batch_size": batch, "forward_ms": round(1000 * fwd, 1),
            "settings": {"score_layer": score_layer, "ablation_layer": ablation_layer, "steps": steps,
                         "patch": patch, "stride": stride, "samples": samples},
            "rows": rows, "errors": {f"{m}:{lib}": e for (m, lib), e in errors.items()}}


def table(res: dict) -> str:
    s = res["settings"]
    lines = [f"{res['model']} at {res['size']}x{res['size']}, batch size {res['batch_size']}, forward "
             f"{res['forward_ms']} ms = 1.00x; Score-CAM at {s['score_layer']}, Ablation-CAM at "
             f"{s['ablation_layer']}, IG {s['steps']} steps, occlusion {s['patch']}/{s['stride']}, "
             f"SmoothGrad {s['samples']} samples",
             "| method | ours | pytorch-grad-cam | torchcam | captum | ours / fastest peer |",
             "|---|---|---|---|---|---|"]
    for m in dict.fromkeys(r["method"] for r in res["rows"]):
        by = {r["library"]: r for r in res["rows"] if r["method"] == m}
        cells = [f"{by[lib]['ratio']:.2f}x" if lib in by else "-"
                 for lib in ("ours", "pytorch-grad-cam", "torchcam", "captum")]
        peers = [r["ms"] for lib, r in by.items() if lib != "ours"]
        rel = f"{by['ours']['ms'] / min(peers):.2f}" if peers and "ours" in by else "-"
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {rel} |")
    for where, err in res["errors"].items():
        lines.append(f"  ({where} could not run: {err})")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench heavy", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=32, help="Integrated Gradients steps")
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--stride", type=int, default=8)
    p.add_argument("--samples", type=int, default=16, help="SmoothGrad samples")
    p.add_argument("--score-layer", default="layer2", help="Score-CAM's layer (its channels are its forwards)")
    p.add_argument("--ablation-layer", default="layer4")
    p.add_argument("--out", type=Path, default=Path("bench/results/heavy.json"))
    args = p.parse_args(argv)
    with warnings.catch_warnings(), tqdm(total=0, desc="heavy methods", unit="call", file=sys.stderr) as bar:
        warnings.simplefilter("ignore")
        res = run(args.model, args.size, args.repeats, args.batch_size, args.steps, args.patch, args.stride,
                  args.samples, args.score_layer, args.ablation_layer, bar)
    return write(res, args.out, args.repeats, table(res))


def write(res: dict, out: Path, repeats: int, text: str) -> int:
    """A bench's ending: its settings into ``res``, ``res`` as JSON to ``out``, the table printed."""
    res["meta"] = {"torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": repeats}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(text)
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
