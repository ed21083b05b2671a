"""``python -m cli.explain``: explain one image or a folder of images with a registered model, in
batch, to files (PNG overlays and .npy maps, plus a JSON record of the settings)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from explainers import render
from explainers.core import Capture, TopK
from explainers.methods import get_method, list_methods, method_names
from explainers.images import IMAGE_SUFFIXES, ImageError, open_image
from explainers.layers import default_layer, list_layers, resolve_layer
from explainers.targets import Answer, CaptionLogProb, ClassLogit, TextSimilarity, WordLogProb

__all__ = ["main"]


class CliError(Exception):
    """Bad input: printed as one line, exit status 1."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cli.explain",
        description="Grad-CAM and every other method of the registry (see --list-methods) for "
                    "images, written as PNG overlays and .npy arrays.")
    p.add_argument("inputs", nargs="*", type=Path, help="image files or folders of images")
    p.add_argument("--model", default="resnet18", help="registry id (see --list-models)")
    p.add_argument("--weights", default=None,
                   help="checkpoint path for the architecture, or 'untrained' (default: the "
                        "model's own weights)")
    p.add_argument("--method", default="gradcam",
                   help="comma-separated, from --list-methods (default: gradcam)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="a method option, e.g. steps=64 (Integrated Gradients) or batch_size=64; "
                        "applies to every chosen method that has it; repeat for several")
    p.add_argument("--layer", default=None, help="dotted layer name (default: the model's last "
                                                  "spatial feature map; see --list-layers)")
    p.add_argument("--target", action="append", default=[],
                   help="class index or category name; repeat or comma-separate for several")
    p.add_argument("--caption", default=None,
                   help="captioning models: the caption to explain, with a map per word (default: the model's own)")
    p.add_argument("--question", default=None, help="VQA models: the question asked about each image")
    p.add_argument("--answer", default=None, help="VQA models: the answer to explain (default: the model's)")
    p.add_argument("--text", action="append", default=[],
                   help="image-text models (shapes-clip, CLIP): a phrase to find in each image (repeat for several; "
                        "default: the model's zero-shot prompts)")
    p.add_argument("--top-k", type=int, default=1, help="explain the k best classes when no "
                                                        "--target is given (default 1)")
    p.add_argument("--out", type=Path, default=Path("gradcam-out"), help="output folder")
    p.add_argument("--cmap", default="jet", choices=render.COLORMAPS)
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity in [0, 1]")
    p.add_argument("--download", action="store_true",
                   help="download the model's weights when they are missing (with a progress bar)")
    p.add_argument("--list-models", action="store_true", help="list registered models and exit")
    p.add_argument("--list-layers", action="store_true", help="list the model's layers and exit")
    p.add_argument("--list-methods", action="store_true", help="list the methods, their cost and paper, and exit")
    return p


def _collect(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(f for f in item.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise CliError(f"{item}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            raise CliError(f"{item}: no such file or folder")
    if not files:
        raise CliError("no input images given")
    return files


def _parse_targets(raw: list[str], categories: tuple[str, ...]) -> list[int]:
    out = []
    lowered = [c.lower() for c in categories]
    for item in (part.strip() for r in raw for part in r.split(",")):
        if not item:
            continue
        if item.lstrip("-").isdigit():
            idx = int(item)
            if not 0 <= idx < len(categories):
                raise CliError(f"class index {idx} out of range: the model has "
                               f"{len(categories)} classes (0..{len(categories) - 1})")
            out.append(idx)
            continue
        name = item.lower()
        if name in lowered:
            out.append(lowered.index(name))
            continue
        hits = [i for i, c in enumerate(lowered) if name in c]
        if len(hits) == 1:
            out.append(hits[0])
        elif not hits:
            raise CliError(f"no class named {item!r}; use an index or a category name")
        else:
            names = ", ".join(categories[i] for i in hits[:5])
            raise CliError(f"class name {item!r} is ambiguous: {names}{', ...' if len(hits) > 5 else ''}")
    return out


def _output_stems(files: list[Path]) -> dict[Path, str]:
    """A distinct output stem per input: the file's stem, or, where two inputs share one (ok.png
    and ok.jpg, or a/x.png and b/x.png), its name with the suffix (ok_png), then a counter."""
    counts: dict[str, int] = {}
    for f in files:
        counts[f.stem] = counts.get(f.stem, 0) + 1
    stems: dict[Path, str] = {}
    taken: set[str] = set()
    for f in files:
        stem = f.stem if counts[f.stem] == 1 else _safe(f.name, 200)
        candidate, k = stem, 2
        while candidate in taken:
            candidate, k = f"{stem}_{k}", k + 1
        taken.add(candidate)
        stems[f] = candidate
    return stems


def _safe(text: str, limit: int = 40) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:limit]


def _parse_options(raw: list[str], methods: list[str]) -> dict[str, dict]:
    """Per method, the --option values it has, converted to the type of its default where
    they can be (baseline=blur stays text)."""
    given = {}
    for item in raw:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--option takes NAME=VALUE, got {item!r}")
        given[name.strip()] = value.strip()
    known = {k for m in methods for k in get_method(m).options}
    unknown = sorted(set(given) - known)
    if unknown:
        raise CliError(f"no chosen method has the option(s) {', '.join(unknown)}; their options: "
                       f"{', '.join(sorted(known)) or 'none'}")
    out = {}
    for m in methods:
        spec, mine = get_method(m), {}
        for k, v in given.items():
            if k not in spec.options:
                continue
            default = spec.options[k]
            mine[k] = v  # a value that is no number stays text; the method says if it is wrong
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                try:
                    mine[k] = type(default)(v)
                except ValueError:
                    pass
        out[m] = mine
    return out


def _list_methods() -> None:
    for m in list_methods():
        blind = "" if m.class_discriminative else ", not class-discriminative"
        print(f"{m.name:22s} {m.title:22s} {m.kind}{blind}; cost: {m.passes}; {m.paper}")


def _token_targets(loaded, model, x, args):
    """(targets, token inputs, a label per map, what the record adds) for a captioning or VQA
    model: the caption (given or the model's own) and each of its words; or the answer (given or
    the model's top one) to the question."""
    from model_zoo.shapes import language  # the shipped models' vocabularies

    try:
        if loaded.spec.task == "text":
            phrases = list(dict.fromkeys(" ".join(t.split()) for t in args.text if t.strip())) or list(loaded.categories)
            tokens = model.tokenize(phrases)
            with torch.no_grad():
                sims = model(x, torch.tensor([tokens]))[0].tolist()
            return ([TextSimilarity(tokens, i, name=p) for i, p in enumerate(phrases)], (tokens,),
                    [f"text{i + 1}-{p}" for i, p in enumerate(phrases)],
                    {"texts": phrases, "similarities": dict(zip(phrases, sims))})
        if loaded.spec.task == "caption":
            text = args.caption
            if text is None:
                with torch.no_grad():
                    text = language.decode_caption(model.generate(x)[0])
            tokens = language.encode_caption(text)
            words = language.split(text)
            targets = [CaptionLogProb(tokens, name=text)] + [WordLogProb(tokens, i, name=w) for i, w in enumerate(words)]
            labels = ["caption"] + [f"word{i + 1}-{w}" for i, w in enumerate(words)]
            return targets, (tokens[:-1],), labels, {"caption": text}
        question = language.encode_question(args.question)
        with torch.no_grad():
            top = int(model(x, torch.tensor([question])).argmax())
        if args.answer is None:
            answer = top
        elif args.answer in loaded.categories:
            answer = loaded.categories.index(args.answer)
        else:
            raise CliError(f"unknown answer {args.answer!r}; the answers are: {', '.join(loaded.categories)}")
        name = loaded.categories[answer]
        return [Answer(question, answer, name=name)], (question,), [name], {
            "question": args.question, "answer": name, "model_answer": loaded.categories[top]}
    except ValueError as err:  # unknown words, a text too long or empty: named, no traceback
        raise CliError(str(err)) from None


def _run(args) -> int:
    import model_zoo  # the CLI is the one part of explainers that needs the zoo
    from model_zoo import threads

    if args.list_methods:
        _list_methods()
        return 0
    for plugin, why in model_zoo.plugin_errors().items():
        tqdm.write(f"warning: plugin {plugin} could not be loaded ({why})", file=sys.stderr)
    if args.list_models:
        for mid in model_zoo.list_models():
            spec = model_zoo.get_spec(mid)
            state = ("untrained (declared by its plugin)" if spec.untrained else
                     "weights present" if model_zoo.weights_available(mid) else "weights missing")
            print(f"{mid:22s} {spec.title:20s} {state}")
        return 0
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    for m in methods:
        if m not in method_names():
            raise CliError(f"unknown method {m!r}; choose from {', '.join(method_names())}")
    if not 0.0 <= args.alpha <= 1.0:
        raise CliError(f"--alpha must be within [0, 1], got {args.alpha}")
    if args.top_k < 1:
        raise CliError(f"--top-k must be at least 1, got {args.top_k}")
    options = _parse_options(args.option, methods)

    if model_zoo.get_spec(args.model).task == "agent":  # a policy acts in an environment: its own command
        raise CliError(f"{args.model} is an agent: explain its episodes with ./studio agent --agent {args.model} "
                       "--episode N")
    if args.list_layers and args.weights is None and not model_zoo.weights_available(args.model):
        args.weights = "untrained"  # the layers are the architecture's: listing them needs no weights
    if args.weights is None and not model_zoo.weights_available(args.model):
        if not args.download:
            spec = model_zoo.get_spec(args.model)
            size = f" ({spec.weights_mb:.0f} MB)" if spec.weights_mb else ""
            raise CliError(f"weights for {args.model!r} are not on this machine: add --download to fetch them{size}"
                           f" into {spec.weights_file()}, or pass --weights PATH")
        with tqdm(desc=f"downloading {args.model}", unit="B", unit_scale=True, file=sys.stderr) as bar:
            def progress(done, total):
                if total and bar.total != total:
                    bar.total = total
                bar.update(done - bar.n)
            model_zoo.fetch_weights(args.model, progress=progress)
    loaded = model_zoo.load(args.model, args.weights, download=False)
    model = loaded.model
    torch.set_num_threads(threads.for_batch_work())  # the cores other processes leave free (model_zoo.threads)
    crop = loaded.preprocess.crop
    layer = args.layer or loaded.default_layer or default_layer(model, torch.zeros(1, 3, crop, crop))
    if args.list_layers:
        for info in list_layers(model, torch.zeros(1, 3, crop, crop)):
            mark = "  (default)" if info.name == layer else ""
            print(f"{info}{mark}")
        return 0
    resolve_layer(model, layer)
    files = _collect(args.inputs)
    task = loaded.spec.task if loaded.spec is not None else "classification"
    if task == "classification" and (args.caption or args.question or args.answer):
        raise CliError(f"--caption, --question and --answer are for captioning and VQA models; {loaded.id} classifies")
    if args.text and task != "text":
        raise CliError(f"--text is for image-text models (shapes-clip, the CLIP models); {loaded.id} does not read "
                       "phrases")
    if task == "text" and (args.caption or args.question or args.answer or args.target):
        raise CliError(f"{loaded.id} is an image-text model: give phrases with --text \"...\" (several allowed)")
    if task == "caption" and (args.question is not None or args.answer is not None):
        raise CliError(f"--question and --answer are for VQA models; {loaded.id} writes captions "
                       "(give --caption, or nothing for its own caption)")
    if task == "vqa" and args.caption is not None:
        raise CliError(f"--caption is for captioning models; {loaded.id} answers questions "
                       "(give --question and optionally --answer)")
    if task == "vqa" and not args.question:
        raise CliError(f"{loaded.id} answers questions: give one with --question \"...\"")
    indices = _parse_targets(args.target, loaded.categories) if task == "classification" else []
    target = [ClassLogit(i) for i in indices] if indices else TopK(args.top_k)

    args.out.mkdir(parents=True, exist_ok=True)
    out_stems = _output_stems(files)
    failures = 0
    for path in tqdm(files, desc="explaining", unit="image", file=sys.stderr):
        try:
            image = open_image(path)
            loaded.preprocess.check(image.size)
        except (ImageError, ValueError) as err:
            tqdm.write(f"skipped {err}", file=sys.stderr)
            failures += 1
            continue
        shown, x = loaded.preprocess.prepare(image)  # resized and cropped once: the picture is the input
        x = x.unsqueeze(0)
        record = {"image": str(path), "model": loaded.id, "weights": loaded.weights,
                  "weights_sha256": loaded.sha256, "layer": layer, "maps": []}
        inputs, labels = (), None
        if task != "classification":
            target, inputs, labels, extra = _token_targets(loaded, model, x, args)
            record.update(extra)
        # one forward pass per image serves every method (the heavy ones add their own passes)
        capture = Capture(model, x, layer=layer, pixels=any(get_method(m).needs_pixels for m in methods),
                          inputs=inputs)
        for method in methods:
            bar = None
            if get_method(method).cost(capture.channels or 0, tuple(x.shape[-2:]), **options[method]).heavy:
                bar = tqdm(desc=f"  {method}", unit="pass", leave=False, mininterval=0.2, file=sys.stderr)

            def progress(done, total, bar=bar):
                if bar is not None:
                    bar.total = total
                    bar.update(done - bar.n)
                    if done == total:
                        bar.refresh()  # the last count is shown even when it came quickly
            try:
                explained = capture.explain(method, target, progress=progress, **options[method])
            finally:
                if bar is not None:
                    bar.close()
            for n_map, exp in enumerate(explained):
                idx = getattr(exp.target, "index", None)
                name = loaded.categories[idx] if labels is None else labels[n_map]
                stem = f"{out_stems[path]}_{method}_{idx if labels is None else n_map}-{_safe(name)}"
                np.save(args.out / f"{stem}.npy", exp.attribution)
                if exp.attribution.ndim == 2:
                    (m,) = render.normalize([exp.attribution], "per_map")
                    picture = render.overlay(shown, m, alpha=args.alpha, cmap=args.cmap)
                else:
                    picture = render.pixel_image(exp.attribution)
                picture.save(args.out / f"{stem}.png")
                record["maps"].append({"method": method, "options": get_method(method).settings(options[method]),
                                       "layer": exp.layer, "class_index": idx,
                                       "class_name": name, "target": exp.target.label,
                                       "score": exp.score, "png": f"{stem}.png", "npy": f"{stem}.npy"})
        (args.out / f"{out_stems[path]}.json").write_text(json.dumps(record, indent=2))
    if failures:
        raise CliError(f"{failures} of {len(files)} image(s) could not be read (see above)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (CliError, ImageError, ValueError, TypeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
