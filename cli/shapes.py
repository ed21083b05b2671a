"""python -m cli.shapes export | train | table: the shapes world from the command line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from model_zoo.shapes import WEIGHTS_DIR
from model_zoo.shapes.voc import export_scene
from model_zoo.shapes.world import CUES, KINDS, make_scene


def _export(args) -> int:
    if args.n < 1:
        raise SystemExit("error: --n must be at least 1")
    if args.world == "language":  # the captioner's and VQA model's scenes, with their captions and questions
        return _export_described(args)
    for i in tqdm(range(args.n), desc="exporting", unit="scene", file=sys.stderr):
        export_scene(make_scene(args.seed, i, args.kind, args.cue), args.out, f"{args.kind}_{args.seed}_{i:06d}")
    print(f"wrote {args.n} scenes to {args.out} (images/, annotations/, masks/)")
    return 0


def _export_described(args) -> int:
    """images/<kind>_<seed>_<i>.png and captions.csv (file, caption, questions with their answers
    as JSON) of the described scenes the captioner and the VQA model read."""
    import csv
    from PIL import Image
    from model_zoo.shapes import language
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    with (args.out / "captions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "caption", "questions"])
        for i in tqdm(range(args.n), desc="exporting", unit="scene", file=sys.stderr):
            scene = language.make_described(args.seed, i, args.kind)
            name = f"{args.kind}_{args.seed}_{i:06d}.png"
            Image.fromarray(scene.image).save(args.out / "images" / name)
            writer.writerow([name, scene.caption, json.dumps({q.text: q.answer for q in language.questions(scene)})])
    print(f"wrote {args.n} described scenes to {args.out} (images/, captions.csv)")
    return 0


def _train(args) -> int:
    from model_zoo.registry import load
    from evaluation.groundtruth import cue_energy, pair_discrimination, pointing  # a front end: above both
    from training.shapes import RECIPES, train, with_overrides

    from model_zoo.shapes.multimodal import MULTI_RECIPES
    from model_zoo.shapes.recipes import AGENT_RECIPES, DENSE_RECIPES
    from training.multimodal import train_multimodal

    from model_zoo.shapes.clip import CLIP_RECIPE

    every = [*RECIPES, *MULTI_RECIPES, *AGENT_RECIPES, *DENSE_RECIPES, CLIP_RECIPE.id]
    ids = every if args.model == "all" else [args.model]
    for model_id in ids:
        if model_id not in every:
            raise SystemExit(f"error: unknown shapes model {model_id!r}; choose from all, {', '.join(every)}")
    for model_id in ids:
        if model_id in AGENT_RECIPES:
            _train_agent(AGENT_RECIPES[model_id], args)
            continue
        if model_id in DENSE_RECIPES:
            _train_dense(DENSE_RECIPES[model_id], args)
            continue
        if model_id == CLIP_RECIPE.id:
            _train_clip(CLIP_RECIPE, args)
            continue
        if model_id in MULTI_RECIPES:
            from dataclasses import replace
            from evaluation import language as ground  # a front end: above both
            overrides = {k: v for k, v in (("n_single", args.n_single), ("n_pair", args.n_pair),
                                           ("epochs", args.epochs), ("seed", args.seed)) if v is not None}
            recipe = replace(MULTI_RECIPES[model_id], **overrides)
            card = train_multimodal(recipe, args.out, heldout=800 if args.heldout is None else args.heldout)
            scenes = 200 if args.groundtruth is None else args.groundtruth  # what the shipped cards used
            if scenes:
                loaded = load(model_id, args.out / f"{model_id}.pt")
                card["gradcam"] = ground.card_figures(loaded, scenes, recipe.seed + 20_000)
                (args.out / f"{model_id}.json").write_text(json.dumps(card, indent=2) + "\n")
            print(f"{model_id}: trained in {card['training_seconds']:.0f} s -> {args.out / (model_id + '.pt')}")
            continue
        recipe = with_overrides(RECIPES[model_id], n_single=args.n_single, n_pair=args.n_pair,
                                epochs=args.epochs, seed=args.seed)
        card = train(recipe, args.out, heldout=1000 if args.heldout is None else args.heldout)
        scenes = 500 if args.groundtruth is None else args.groundtruth
        if scenes:
            loaded = load(model_id, args.out / f"{model_id}.pt")  # the registry's checked path
            model, layer = loaded.model, loaded.default_layer
            n, seed = scenes, recipe.seed + 20_000
            card["gradcam"] = {"layer": layer,
                               "pointing_single": pointing(model, layer, n, seed),
                               "pair_own_object": pair_discrimination(model, layer, n, seed),
                               "cue_energy": cue_energy(model, layer, n, seed)}
            (args.out / f"{model_id}.json").write_text(json.dumps(card, indent=2) + "\n")
        print(f"{model_id}: held-out accuracy {card['heldout']['accuracy']:.4f} "
              f"({card['training_seconds']:.0f} s) -> {args.out / (model_id + '.pt')}")
    return 0


def _train_agent(recipe, args) -> None:
    """A navigation agent (``training.agents``): --epochs, --seed and --ppo-steps override the
    recipe's, --n-single its imitation episodes, --heldout the card's episodes (default 300)."""
    from dataclasses import replace

    from training.agents import train_agent
    overrides = {k: v for k, v in (("episodes", args.n_single), ("epochs", args.epochs), ("seed", args.seed),
                                   ("ppo_steps", args.ppo_steps)) if v is not None}
    card = train_agent(replace(recipe, **overrides), args.out, heldout=300 if args.heldout is None else args.heldout)
    none = card["heldout"]["none"]
    print(f"{recipe.id}: held-out success {none['success']:.1%} (random policy "
          f"{card['random_policy']['success']:.1%}), {card['training_seconds']:.0f} s -> {args.out / (recipe.id + '.pt')}")


def _train_dense(recipe, args) -> None:
    """The detector or the segmenter (``training.dense``): --n-single overrides its training
    scenes, --epochs and --seed the recipe's, --heldout the card's scenes (default 500) and
    --groundtruth the scenes of its maps' figures (default 100 for the detector, whose D-RISE
    runs 500 forwards a detection; 200 for the segmenter)."""
    from dataclasses import replace

    from evaluation import dense as ev
    from model_zoo.registry import load
    from model_zoo.shapes.world import make_scene
    from training.dense import train_dense
    overrides = {k: v for k, v in (("scenes", args.n_single), ("epochs", args.epochs), ("seed", args.seed))
                 if v is not None}
    card = train_dense(replace(recipe, **overrides), args.out, heldout=500 if args.heldout is None else args.heldout)
    detector = recipe.task == "detection"
    n = (100 if detector else 200) if args.groundtruth is None else args.groundtruth
    if n:
        loaded = load(recipe.id, args.out / f"{recipe.id}.pt")  # the registry's checked path
        scenes = [make_scene(ev.HELDOUT_SEED, i, "multi") for i in range(n)]
        with tqdm(total=n, desc=f"{recipe.id}: maps", unit="scene", file=sys.stderr) as bar:
            tell = lambda done, total: bar.update(done - bar.n)  # noqa: E731
            figures = (ev.detection_card if detector else ev.segmentation_card)(
                loaded.model, loaded.default_layer, loaded.spec.preprocess, scenes, progress=tell)
        card["maps"] = figures
        (args.out / f"{recipe.id}.json").write_text(json.dumps(card, indent=2) + "\n")
    h = card["heldout"]
    what = f"mAP@0.5 {h['map50']:.3f}" if detector else f"mean IoU {h['miou']:.3f}"
    print(f"{recipe.id}: held-out {what}, {card['training_seconds']:.0f} s -> {args.out / (recipe.id + '.pt')}")


def _train_clip(recipe, args) -> None:
    """``shapes-clip`` (``training.clip``): --n-single, --n-pair, --epochs and --seed override the
    recipe's; --groundtruth the held-out two-object scenes of its pointing figures (default 200)."""
    from dataclasses import replace

    from evaluation import text
    from model_zoo.registry import load
    from training.clip import train_clip
    overrides = {k: v for k, v in (("n_single", args.n_single), ("n_pair", args.n_pair), ("epochs", args.epochs),
                                   ("seed", args.seed)) if v is not None}
    recipe = replace(recipe, **overrides)
    card = train_clip(recipe, args.out)
    n = 200 if args.groundtruth is None else args.groundtruth
    if n:
        loaded = load(recipe.id, args.out / f"{recipe.id}.pt")  # the registry's checked path
        card["gradcam"] = {"layer": loaded.default_layer,
                           **text.card_figures(loaded, n, recipe.seed + text.HELDOUT_OFFSET)}
        (args.out / f"{recipe.id}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"{recipe.id}: zero-shot shape accuracy {card['zero_shot_shape_accuracy']:.1%}, "
          f"{card['training_seconds']:.0f} s -> {args.out / (recipe.id + '.pt')}")


def _table(args) -> int:
    """The shipped models' cards as a markdown table (for the README)."""
    from model_zoo.shapes import card
    from model_zoo.shapes.recipes import RECIPES

    print("| model | parameters | held-out accuracy: no mark / matching mark / misleading mark "
          "| pointing | two-object | both classes top-2 | cue mass | trained in |")
    print("|---|---|---|---|---|---|---|---|")
    for model_id in RECIPES:
        c = card(model_id)
        g, h = c["gradcam"], c["heldout"]
        cells = [f"`{model_id}`", f"{c['parameters']:,}",
                 f"{h['accuracy']:.1%} / {h['accuracy_with_matching_cue']:.1%} / "
                 f"{h['accuracy_with_flipped_cue']:.1%}",
                 f"{g['pointing_single']['pointing']:.1%}", f"{g['pair_own_object']['own_object']:.1%}",
                 f"{g['pair_own_object']['both_classes_in_top2']:.1%}",
                 f"{g['cue_energy']['cue_mass']:.1%}", f"{c['training_seconds']:.0f} s"]
        print("| " + " | ".join(cells) + " |")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cli.shapes", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="write a split as PNGs with Pascal VOC XML and masks")
    e.add_argument("--kind", choices=KINDS, default="single")
    e.add_argument("--cue", choices=CUES, default="none")
    e.add_argument("--n", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--world", choices=["objects", "language"], default="objects",
                   help="objects: the classifiers' scenes with VOC boxes and masks (default); language: the "
                        "captioner's and VQA model's scenes with captions.csv")
    t = sub.add_parser("train", help="train a shapes model (or all) and write weights + card")
    t.add_argument("--model", default="all")
    t.add_argument("--n-single", type=int, default=None,
                   help="override the recipe's scene count (an agent's: its imitation episodes; the detector's "
                        "and segmenter's: their multi-object training scenes)")
    t.add_argument("--n-pair", type=int, default=None)
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--ppo-steps", type=int, default=None,
                   help="an agent's PPO fine-tuning steps (0: imitation only; default the recipe's)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--heldout", type=int, default=None,
                   help="held-out scenes for the card's accuracy (default: 1000 for classifiers, 800 for the "
                        "captioner and VQA model, 300 episodes for an agent, 500 for the detector and segmenter)")
    t.add_argument("--groundtruth", type=int, default=None,
                   help="scenes for the card's Grad-CAM ground-truth figures (0: skip; default 500 for "
                        "classifiers, 200 for the captioner and VQA model and the segmenter, 100 for the "
                        "detector)")
    t.add_argument("--out", type=Path, default=WEIGHTS_DIR,
                   help="where the weights and cards go (default: the shipped models' folder, "
                        "model_zoo/shapes/weights/, replacing the shipped weights; git shows the change)")
    sub.add_parser("table", help="print the shipped models' cards as a markdown table")
    args = p.parse_args(argv)
    try:
        return {"export": _export, "train": _train, "table": _table}[args.command](args)
    except (ValueError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
