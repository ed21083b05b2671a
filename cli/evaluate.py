"""python -m cli.evaluate --model shapes-resnet --data shapes:single --methods gradcam,random --n 200
--out report.json: every metric for every method, as JSON and CSV, with a table and a progress bar.
``python -m cli.evaluate diagnose``: the diagnosis figures (adversarial, bias, neurons, mistakes).
``python -m cli.evaluate scale``: localisation and pointing at scale (batched, resumable, Ray).
``python -m cli.evaluate photos``: pointing of the paper's four maps on the real photos (README table).
``python -m cli.evaluate agreement``: do the metrics agree? (rankings, Kendall's tau, rank changes)"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

import model_zoo
from model_zoo import threads

from evaluation import data, run, sanity


def _use_free_cores() -> None:
    """The command lines' thread rule (model_zoo.threads.for_batch_work): the cores free now."""
    torch.set_num_threads(threads.for_batch_work())


def table(report: dict) -> str:
    keys = list(report["scores"])
    short = {"localisation_error_top1": "loc err top1", "localisation_error_top5": "loc err top5",
             "gt_known_localisation_accuracy": "gt-known loc", "pointing": "pointing",
             "pointing_recall_aware": "pointing (recall)", "faithfulness_spearman": "faithfulness",
             "deletion_auc": "deletion AUC", "insertion_auc": "insertion AUC", "average_drop_pct": "avg drop %",
             "increase_in_confidence_pct": "incr. conf %"}
    timing = report.get("map_seconds_per_image", {})
    lines = ["| method | " + " | ".join(short.get(k, k) for k in keys) + " | ms per image |",
             "|---|" + "---|" * (len(keys) + 1)]
    for m, vals in report["methods"].items():
        ms = f"{1000 * timing[m]:.1f}" if m in timing else "n/a"
        lines.append(f"| {m} | " + " | ".join(f"{vals[k]:.3f}" if abs(vals[k]) < 10 else f"{vals[k]:.1f}"
                                             for k in keys) + f" | {ms} |")
    return "\n".join(lines)


def diagnose(argv) -> int:
    """The README's diagnosis figures: PGD against shapes-resnet's maps, the biased model's mass
    on the mark, units named "corner mark" among decisions, where mistakes' maps peak."""
    from evaluation import diagnosis
    p = argparse.ArgumentParser(prog="python -m cli.evaluate diagnose", description=diagnose.__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="held-out scenes per figure")
    p.add_argument("--seed", type=int, default=20000)
    p.add_argument("--epsilon", type=float, default=8.0, help="PGD budget in grey levels of 255")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--dissection-seeds", default=",".join(str(s) for s in diagnosis.DISSECTION_SEEDS),
                   help="probe seeds of the dissections that name the units (the share is given for each, with "
                        "its mean and range)")
    p.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.dissection_seeds.split(",") if s.strip()]
    resnet, biased, weak = (model_zoo.load(m) for m in ("shapes-resnet", "shapes-biased", "shapes-weak"))
    _use_free_cores()
    out = {}
    with tqdm(total=7, desc="diagnosis figures", unit="figure", file=sys.stderr) as bar:
        out["adversarial"] = diagnosis.adversarial_pointing(resnet, args.n, args.seed, args.epsilon / 255,
                                                            steps=args.steps)
        bar.update(1)
        out["bias"] = diagnosis.bias_report([biased, resnet], args.n, args.seed)
        bar.update(1)
        for loaded in (biased, resnet):
            r = diagnosis.mark_units_over_seeds(loaded, args.n, args.seed, seeds)
            out[f"mark_units {loaded.id}"] = {**r, "names": diagnosis.dissection(loaded, seed=seeds[0]).summary()}
            bar.update(1)
        for loaded, cue in ((biased, "flip"), (biased, "none"), (weak, "none")):
            r = diagnosis.mistakes(loaded, args.n, args.seed, cue, keep=0)
            out[f"mistakes {loaded.id} {cue}"] = {k: r[k] for k in ("scenes", "errors", "tally", "tolerance_px")}
            bar.update(1)
    text = json.dumps(out, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


def scaled(argv) -> int:
    """The localisation-and-pointing protocol at scale: batched, DataLoader workers, resumable,
    on one machine or on Ray."""
    from evaluation import imagenet, scale
    p = argparse.ArgumentParser(prog="python -m cli.evaluate scale", description=scaled.__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--weights", default=None, help="a checkpoint, or 'untrained' for random weights (speed)")
    p.add_argument("--data", default="shapes:single",
                   help="shapes:single, shapes:pair, a VOC folder, or an ImageNet val folder with --mapping")
    p.add_argument("--mapping", default=None, help="WordNet id per model class, in order (LOC_synset_mapping.txt)")
    p.add_argument("--n", type=int, default=None, help="images (default: all of a folder; 200 shapes scenes)")
    p.add_argument("--seed", type=int, default=20000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader worker processes decoding images (default: the cores beyond 2, at most 4)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threshold", type=float, default=0.15)
    p.add_argument("--tolerance", type=float, default=15.0)
    p.add_argument("--method", default="gradcam", help="a layer-map method of the registry (default gradcam)")
    p.add_argument("--results", type=Path, default=None, help="per-image results (JSON lines): a rerun resumes")
    p.add_argument("--engine", choices=["local", "ray"], default="local")
    p.add_argument("--address", default=None, help="an existing Ray cluster (default: a local one)")
    p.add_argument("--shards", type=int, default=2, help="Ray actors (each loads the model once)")
    p.add_argument("--out", type=Path, default=Path("report.json"))
    args = p.parse_args(argv)
    settings = scale.Settings(threshold=args.threshold, tolerance=args.tolerance, method=args.method)
    try:
        import explainers
        if explainers.get_method(args.method).kind != "layer map":
            raise ValueError(f"{args.method} is a pixel map; the protocol at scale takes a layer-map method "
                             f"({', '.join(explainers.method_names('layer map'))})")
        loaded = model_zoo.load(args.model, args.weights)
        _use_free_cores()
        if args.data.startswith("shapes"):
            kind = args.data.split(":", 1)[1] if ":" in args.data else "single"
            items = scale.ShapesItems(args.n or 200, args.seed, kind, loaded.preprocess)
        elif args.mapping:
            items = scale.FileItems(imagenet.imagenet_val(args.data, args.mapping, loaded.categories),
                                    loaded.preprocess, args.n)
        else:
            items = scale.FileItems(data.voc_folder(args.data), loaded.preprocess, args.n)
        with tqdm(total=len(items), desc="localisation and pointing", unit="image", file=sys.stderr) as bar:
            def tick(done, total):
                bar.total = total
                bar.n = done
                bar.refresh()
            if args.engine == "ray":
                if args.results:
                    raise ValueError("--results resumes local runs; a Ray run returns its records in the report")
                report = scale.run_ray(args.model, items, settings, shards=args.shards, batch=args.batch,
                                       address=args.address, weights=args.weights, progress=tick)
            else:
                workers = scale.auto_workers() if args.workers is None else args.workers
                report = scale.loc_pointing(loaded, items, settings, batch=args.batch, workers=workers,
                                            device=args.device, results=args.results, progress=tick)
    except (ValueError, model_zoo.ZooError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    report.pop("records", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    ran = report.get("new_images", report["images"])
    resumed = f" ({report['resumed_images']} resumed from {args.results})" if report.get("resumed_images") else ""
    print(f"{report['model']}: {report['images']} images{resumed}; {ran} run in {report['seconds']:.1f} s "
          f"({ran / max(report['seconds'], 1e-9):.2f} images/s); top-1 localisation error "
          f"{report['localisation_error_top1']:.3f}, GT-known {report['gt_known_localisation_accuracy']:.3f}, "
          f"pointing {report['pointing']:.3f} ({report['pointing_trials']} classes)"
          + (f"; skipped {len(report['skipped_files'])} file(s)" if report["skipped_files"] else "")
          + "".join(f"; {line}" for line in scale.faults(report)))
    return 0


def photo_table(argv) -> int:
    """The README's real-photo table: does each of the paper's four maps peak in the object's box?"""
    from evaluation import photos
    p = argparse.ArgumentParser(prog="python -m cli.evaluate photos", description=photo_table.__doc__)
    p.add_argument("--model", default="efficientnet-lite0", help="an ImageNet classifier of the registry")
    p.add_argument("--layer", default=None, help="default: the model's own")
    p.add_argument("--tolerance", type=float, default=15.0, help="pointing tolerance in pixels of the model's view")
    args = p.parse_args(argv)
    loaded = model_zoo.load(args.model)
    _use_free_cores()
    print(photos.markdown(photos.pointing_rows(loaded, args.layer, args.tolerance)))
    return 0


def agreement(argv) -> int:
    """Issue 31's metric-agreement panel: nine metrics rank the methods on the same images, with
    bootstrap intervals, Kendall's tau between every two metrics and the methods whose rank changes
    significantly; written as JSON (panel and per-image values) and Markdown, and printed."""
    from cli.explain import CliError, _parse_options
    from evaluation import concordance
    p = argparse.ArgumentParser(prog="python -m cli.evaluate agreement", description=agreement.__doc__)
    p.add_argument("--model", default="shapes-resnet", help="a registry id (default shapes-resnet)")
    p.add_argument("--weights", default=None, help="a checkpoint file for the model (default: its own)")
    p.add_argument("--data", default="shapes:single", help="shapes:single, shapes:pair or a VOC folder")
    p.add_argument("--methods", default=None, help="comma-separated (default: every registered method and baseline)")
    p.add_argument("--metrics", default=None, help="comma-separated (default: all of " + ", ".join(concordance.METRICS) + ")")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="a method option for the methods that have it, e.g. masks=500 (RISE)")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=20000, help="shapes world seed (held out from training)")
    p.add_argument("--tolerance", type=float, default=15.0, help="pointing tolerance in pixels")
    p.add_argument("--noisy-copies", type=int, default=3, help="noisy copies per image of stability and smooth MPRT")
    p.add_argument("--boot", type=int, default=1000, help="bootstrap draws")
    p.add_argument("--out", type=Path, default=Path("agreement.json"), help="also writes the Markdown beside it (.md)")
    args = p.parse_args(argv)
    try:
        loaded = model_zoo.load(args.model, args.weights)
        _use_free_cores()
        methods = run.all_methods(loaded.model) if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
        names = None if args.metrics is None else [m.strip() for m in args.metrics.split(",") if m.strip()]
        options = {m: o for m, o in _parse_options(args.option, methods).items() if o}
        samples = data.from_spec(args.data, args.n, args.seed)
        with tqdm(total=args.n, desc="scoring", unit="image", file=sys.stderr) as bar:
            scored = concordance.score_images(loaded, samples, methods, names, tolerance=args.tolerance,
                                              samples_per_image=args.noisy_copies, options=options,
                                              progress=lambda done: bar.update(done - bar.n))
        scored["data"], scored["world_seed"] = args.data, args.seed
        result = concordance.panel(scored, boot=args.boot)
    except (ValueError, CliError, model_zoo.ZooError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(concordance.to_json(result, scored))
    text = concordance.markdown(result, scored)
    args.out.with_suffix(".md").write_text(text + "\n")
    print(f"{scored['model']} on {args.data}: {scored['images']} images, {len(methods)} methods"
          + "".join(f"; {m} with {', '.join(f'{k}={v}' for k, v in o.items())}" for m, o in options.items()))
    print(text)
    print(f"written to {args.out} and {args.out.with_suffix('.md')}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["photos"]:
        return photo_table(argv[1:])
    if argv[:1] == ["diagnose"]:
        return diagnose(argv[1:])
    if argv[:1] == ["scale"]:
        return scaled(argv[1:])
    if argv[:1] == ["agreement"]:
        return agreement(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m cli.evaluate", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Every metric for every method on one model, as JSON and CSV, with a table and a progress bar.",
        epilog="other commands (each with its own --help):\n"
               "  diagnose   the diagnosis figures: adversarial, bias, neurons, mistakes\n"
               "  scale      localisation and pointing at scale: batched, resumable, on Ray\n"
               "  photos     pointing of the paper's four maps on the real photos (README table)\n"
               "  agreement  do the metrics agree? rankings with intervals, Kendall's tau, rank changes")
    p.add_argument("--model", required=True, help="a registry id, e.g. shapes-resnet")
    p.add_argument("--weights", default=None, help="a checkpoint file for the model (default: its own)")
    p.add_argument("--data", default="shapes:single", help="shapes:single, shapes:pair or a VOC folder")
    p.add_argument("--methods", default=None, help="comma-separated (default: every registered method and baseline)")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=20000, help="shapes world seed (held out from training)")
    p.add_argument("--threshold", type=float, default=0.15)
    p.add_argument("--tolerance", type=float, default=15.0, help="pointing tolerance in pixels")
    p.add_argument("--reject", type=float, default=0.5, help="recall-aware pointing: reject below this x max")
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--stride", type=int, default=4)
    p.add_argument("--sanity", type=int, default=0, help="images for the cascading randomisation check")
    p.add_argument("--out", type=Path, default=Path("report.json"))
    args = p.parse_args(argv)
    try:
        loaded = model_zoo.load(args.model, args.weights)
        _use_free_cores()
        methods = run.all_methods(loaded.model) if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
        samples = data.from_spec(args.data, args.n, args.seed)
        with tqdm(total=args.n, desc="evaluating", unit="image", file=sys.stderr) as bar:
            report = run.evaluate(loaded, samples, methods, threshold=args.threshold, tolerance=args.tolerance,
                                  reject=args.reject, steps=args.steps, patch=args.patch, stride=args.stride,
                                  progress=lambda done: bar.update(1))
        report["data"] = args.data
        if args.sanity:
            with tqdm(desc="sanity check", unit="layer", file=sys.stderr) as bar:
                report["sanity"] = sanity.cascading(loaded, data.from_spec(args.data, args.sanity, args.seed),
                                                    [m for m in methods if m not in run.baselines()],
                                                    progress=lambda: bar.update(1))
    except (ValueError, model_zoo.ZooError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".csv").write_text(run.to_csv(report))
    print(f"{report['model']} on {args.data}: {report['images']} images, top-1 accuracy "
          f"{report['top1_accuracy']:.1%}, {report['images'] / report['seconds']:.2f} images/s")
    if report["skipped_files"]:
        print(f"skipped {len(report['skipped_files'])} file(s): " + "; ".join(
            f"{f['file']} ({f['reason']})" for f in report["skipped_files"][:10])
            + (" ..." if len(report["skipped_files"]) > 10 else ""))
    for m, k in report["maps_not_finite"].items():
        if k:
            print(f"{m}: {k} image(s) gave a map with NaN or infinite values, left out of its figures")
    print(table(report))
    for k, v in report["scores"].items():
        print(f"  {k}: {v}")
    print(f"written to {args.out} and {args.out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
