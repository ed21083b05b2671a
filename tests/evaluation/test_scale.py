"""The protocol at scale: ImageNet validation in both layouts (folders the tests write), the
synset mapping's errors, batching that does not change the report, resuming that gives the
uninterrupted report, and Ray's report equal to the local one."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

import model_zoo
from evaluation import data, imagenet, run, scale
from model_zoo.shapes.voc import export_scene
from model_zoo.shapes.world import CLASSES, make_scene

WNIDS = [f"n{10000000 + 7 * i:08d}" for i in range(len(CLASSES))]


@pytest.fixture(scope="module")
def resnet():
    return model_zoo.load("shapes-resnet")


def _mapping(tmp_path, wnids=WNIDS):
    path = tmp_path / "LOC_synset_mapping.txt"
    path.write_text("".join(f"{w} {c}, a shape\n" for w, c in zip(wnids, CLASSES)))
    return path


def _ilsvrc(tmp_path, n=6):
    root = tmp_path / "ilsvrc"
    for i in range(n):
        export_scene(make_scene(20000, i, "pair" if i % 3 == 2 else "single"), root, f"ILSVRC2012_val_{i:08d}")
        xml = root / "annotations" / f"ILSVRC2012_val_{i:08d}.xml"
        text = xml.read_text()
        for c, w in zip(CLASSES, WNIDS):
            text = text.replace(f"<name>{c}</name>", f"<name>{w}</name>")
        xml.write_text(text)
    return root


def _kaggle(tmp_path, ilsvrc_root):
    root = tmp_path / "kaggle"
    val = root / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    val.mkdir(parents=True)
    from model_zoo.shapes.voc import read_voc
    with (root / "LOC_val_solution.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageId", "PredictionString"])
        for xml in sorted((ilsvrc_root / "annotations").glob("*.xml")):
            ann = read_voc(xml)
            parts = []
            for o in ann.objects:  # the XML's own numbers: 1-based, inclusive
                x0, y0, x1, y1 = o.box
                parts += [o.name, str(x0 + 1), str(y0 + 1), str(x1), str(y1)]
            w.writerow([xml.stem, " ".join(parts)])
            Image.open(ilsvrc_root / "images" / f"{xml.stem}.png").save(val / f"{xml.stem}.JPEG", quality=98)
    return root


def test_both_imagenet_layouts_give_the_same_objects(tmp_path, resnet):
    ilsvrc = _ilsvrc(tmp_path)
    kaggle = _kaggle(tmp_path, ilsvrc)
    mapping = _mapping(tmp_path)
    a = list(imagenet.imagenet_val(ilsvrc, mapping, resnet.categories))
    b = list(imagenet.imagenet_val(kaggle, mapping, resnet.categories))
    assert [s.name.split(".")[0] for s in a] == [s.name.split(".")[0] for s in b] and len(a) == 6
    for s, t, i in zip(a, b, range(6)):
        scene = make_scene(20000, i, "pair" if i % 3 == 2 else "single")
        assert [(o.name, o.box) for o in s.objects] == [(o.name, tuple(o.box)) for o in scene.objects]
        assert [(o.name, o.box) for o in t.objects] == [(o.name, o.box) for o in s.objects]
    assert len(a[2].objects) == 2  # every box of a multi-object image


def test_mapping_errors_are_specific(tmp_path, resnet):
    ilsvrc = _ilsvrc(tmp_path, n=2)
    wrong = _mapping(tmp_path, [w.replace("n1", "n2") for w in WNIDS])
    with pytest.raises(imagenet.MappingError, match=r"ILSVRC2012_val_00000000.png: WordNet id n1\d{7} is not in "
                                                    r"LOC_synset_mapping.txt \(8 ids\)"):
        list(imagenet.imagenet_val(ilsvrc, wrong, resnet.categories))
    short = tmp_path / "short.txt"
    short.write_text("\n".join(WNIDS[:5]))
    with pytest.raises(imagenet.MappingError, match="lists 5 WordNet ids but the model has 8 classes"):
        imagenet.imagenet_val(ilsvrc, short, resnet.categories)
    bad = tmp_path / "bad.txt"
    bad.write_text("tench\n" * 8)
    with pytest.raises(imagenet.MappingError, match="line 1: 'tench' is not a WordNet id"):
        imagenet.imagenet_val(ilsvrc, bad, resnet.categories)
    with pytest.raises(imagenet.MappingError, match="does not exist"):
        imagenet.imagenet_val(ilsvrc, tmp_path / "none.txt", resnet.categories)


def _strip(report):
    return {k: v for k, v in report.items() if k not in ("seconds", "new_images", "resumed_images")}


def test_batching_does_not_change_the_report_and_agrees_with_the_full_loop(resnet):
    items = scale.ShapesItems(30, 20000, "single", resnet.preprocess)
    a = scale.loc_pointing(resnet, items, batch=16)
    b = scale.loc_pointing(resnet, items, batch=7)
    assert _strip(a) == _strip(b) and a["images"] == 30
    full = run.evaluate(resnet, data.shapes(30, 20000), ["gradcam"], tolerance=15.0)
    g = full["methods"]["gradcam"]
    assert a["localisation_error_top1"] == pytest.approx(g["localisation_error_top1"], abs=1e-12)
    assert a["gt_known_localisation_accuracy"] == pytest.approx(g["gt_known_localisation_accuracy"], abs=1e-12)
    assert a["top1_accuracy"] == pytest.approx(full["top1_accuracy"])


def test_an_interrupted_run_resumed_gives_the_uninterrupted_report(tmp_path, resnet):
    items = scale.ShapesItems(40, 20000, "pair", resnet.preprocess)
    whole = scale.loc_pointing(resnet, items, batch=8)
    path = tmp_path / "results.jsonl"
    first = scale.loc_pointing(resnet, items, batch=8, results=path, stop_after=16)
    assert first["new_images"] == 16 and len(path.read_text().splitlines()) == 17  # header + 16
    with path.open("a") as f:
        f.write('{"i": 99, "na')  # a line cut by the interruption
    resumed = scale.loc_pointing(resnet, items, batch=8, results=path)
    assert resumed["resumed_images"] == 16 and resumed["new_images"] == 24
    assert _strip(resumed) == _strip(whole)
    again = scale.loc_pointing(resnet, items, batch=8, results=path)
    assert again["new_images"] == 0 and _strip(again) == _strip(whole)
    with pytest.raises(scale.SettingsMismatch, match="other settings"):
        scale.loc_pointing(resnet, items, scale.Settings(threshold=0.3), results=path)
    assert json.loads(path.read_text().splitlines()[0])["header"]["model"] == "shapes-resnet"


def test_a_folder_through_dataloader_workers_counts_what_it_skips(tmp_path, resnet):
    ilsvrc = _ilsvrc(tmp_path, n=6)
    (ilsvrc / "images" / "broken.png").write_bytes(b"not an image")
    (ilsvrc / "annotations" / "broken.xml").write_text((ilsvrc / "annotations" / "ILSVRC2012_val_00000000.xml")
                                                       .read_text())
    (ilsvrc / "images" / "lonely.png").write_bytes((ilsvrc / "images" / "ILSVRC2012_val_00000001.png").read_bytes())
    source = imagenet.imagenet_val(ilsvrc, _mapping(tmp_path), resnet.categories)
    items = scale.FileItems(source, resnet.preprocess)
    r = scale.loc_pointing(resnet, items, batch=4, workers=1)
    assert r["images"] == 6 and sorted(s["file"] for s in r["skipped_files"]) == ["broken.png", "lonely.png"]
    assert {s["file"]: s["reason"] for s in r["skipped_files"]}["lonely.png"] == "no annotation lonely.xml"
    local = scale.loc_pointing(resnet, scale.ShapesItems(6, 20000, "single", resnet.preprocess), batch=4)
    assert r["images_with_a_true_class"] == 6 and np.isfinite(r["pointing"]) and local["images"] == 6


@pytest.mark.slow
def test_ray_gives_the_local_report(resnet):
    items = scale.ShapesItems(24, 20000, "single", resnet.preprocess)
    local = scale.loc_pointing(resnet, items, batch=8)
    distributed = scale.run_ray("shapes-resnet", items, shards=2, batch=8, num_cpus=2)
    assert distributed["engine"] == "ray" and distributed["shards"] == 2
    for key in ("images", "top1_accuracy", "localisation_error_top1", "gt_known_localisation_accuracy", "pointing"):
        assert distributed[key] == pytest.approx(local[key], abs=1e-9), key
    assert [r["i"] for r in distributed["records"]] == list(range(24))


def test_the_command_line_resumes_and_names_bad_input(tmp_path, capsys):
    from evaluation.__main__ import main
    args = ["scale", "--model", "shapes-resnet", "--n", "20", "--batch", "8", "--out", str(tmp_path / "r.json"),
            "--results", str(tmp_path / "r.jsonl")]
    assert main(args) == 0
    first = json.loads((tmp_path / "r.json").read_text())
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "20 images (20 resumed from" in out and "0 run in" in out
    again = json.loads((tmp_path / "r.json").read_text())
    assert {k: again[k] for k in ("pointing", "localisation_error_top1")} == \
        {k: first[k] for k in ("pointing", "localisation_error_top1")}
    assert main(["scale", "--model", "shapes-resnet", "--data", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "x.json")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["scale", "--model", "shapes-resnet", "--device", "cuda:0", "--n", "2",
                 "--out", str(tmp_path / "y.json")]) == (0 if __import__("torch").cuda.is_available() else 1)
