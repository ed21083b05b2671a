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


RUN_HISTORY = ("seconds", "new_images", "resumed_images", "dropped_records", "worker_restarts", "retried_shards")


def _strip(report):
    """The report without what depends on the run's history (time, resumes, faults survived)."""
    return {k: v for k, v in report.items() if k not in RUN_HISTORY}


def test_batching_does_not_change_the_report_and_agrees_with_the_full_loop(resnet):
    items = scale.ShapesItems(30, 20000, "single", resnet.preprocess)
    a = scale.loc_pointing(resnet, items, batch=16)
    b = scale.loc_pointing(resnet, items, batch=7)
    assert _strip(a) == _strip(b) and a["images"] == 30
    full = run.evaluate(resnet, data.shapes(30, 20000), ["gradcam"], tolerance=15.0)
    g = full["methods"]["gradcam"]
    assert a["localisation_error_top1"] == pytest.approx(g["localisation_error_top1"], abs=1e-12)
    assert a["gt_known_localisation_accuracy"] == pytest.approx(g["gt_known_localisation_accuracy"], abs=1e-12)
    assert a["pointing"] == pytest.approx(g["pointing"], abs=1e-12)  # masks on both sides
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
    assert resumed["dropped_records"] == {"not JSON (a line cut by an interruption?)": 1}
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
    from cli.evaluate import main
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


def _lines(path):
    return path.read_text().splitlines()


def test_a_results_file_is_checked_line_by_line(tmp_path, resnet):
    """Every kind of bad line is dropped and counted by reason, the images they claimed run
    again, and the report equals an uninterrupted run's."""
    items = scale.ShapesItems(12, 20000, "single", resnet.preprocess)
    path = tmp_path / "results.jsonl"
    whole = scale.loc_pointing(resnet, items, batch=6, results=path)
    lines = _lines(path)
    records = [json.loads(x) for x in lines[1:]]
    missing = {k: v for k, v in records[3].items() if k != "pointing_hits"}
    other = dict(records[4], name=records[5]["name"])
    outside = dict(records[6], i=99)
    flag = dict(records[7], correct="yes")
    kept = [x for j, x in enumerate(lines[1:]) if j not in (3, 4, 6, 7)]
    bad = ["[]", '{"x": 1}', json.dumps(missing), json.dumps(other), json.dumps(outside), json.dumps(flag),
           '"a string"', "not json at all", lines[1]]  # the last: a second record of image 0
    path.write_text("\n".join([lines[0], *kept, *bad]) + "\n")
    again = scale.loc_pointing(resnet, items, batch=6, results=path)
    assert again["dropped_records"] == {"not a record": 2, "no image index": 1, "no pointing result": 1,
                                        "another image's name": 1, "an image index outside this run's images": 1,
                                        "no prediction": 1, "not JSON (a line cut by an interruption?)": 1,
                                        "a second record of an image": 1}
    assert again["resumed_images"] == 8 and again["new_images"] == 4  # images 3, 4, 6 and 7 ran again
    assert _strip(again) == _strip(whole) and again["images"] == 12
    assert len(_lines(path)) == 13  # rewritten: the header and one valid record per image
    from evaluation.scale import faults
    assert faults(again)[0].startswith("dropped 9 lines of the results file (1 a second record of an image, ")


def test_two_runs_appended_to_one_file_count_each_image_once(tmp_path, resnet):
    """The field report: two runs on one file left 5,864 records and a later run reported 5,864
    images of 3,000. Here: every record twice, and the report still counts each image once."""
    items = scale.ShapesItems(10, 20000, "single", resnet.preprocess)
    path = tmp_path / "results.jsonl"
    whole = scale.loc_pointing(resnet, items, batch=5, results=path)
    lines = _lines(path)
    path.write_text("\n".join(lines + lines[1:]) + "\n")
    again = scale.loc_pointing(resnet, items, batch=5, results=path)
    assert again["images"] == 10 and again["new_images"] == 0
    assert again["dropped_records"] == {"a second record of an image": 10}
    assert _strip(again) == _strip(whole)


def test_a_file_that_is_not_a_results_file_is_refused_with_a_message(tmp_path, resnet):
    items = scale.ShapesItems(4, 20000, "single", resnet.preprocess)
    for text in ("[]\n", '{"x": 1}\n', "\x00\xff binary", '{"header": [1, 2]}\n'):
        path = tmp_path / "r.jsonl"
        path.write_bytes(text.encode("latin-1"))
        with pytest.raises(scale.ResultsFileError, match=r"r.jsonl is not a results file of this protocol \(its first "
                                                         r"line is not its header\)"):
            scale.loc_pointing(resnet, items, results=path)
        assert path.read_bytes() == text.encode("latin-1")  # not overwritten: it may be someone's


def test_one_run_at_a_time_writes_a_results_file(tmp_path, resnet):
    import fcntl
    items = scale.ShapesItems(4, 20000, "single", resnet.preprocess)
    path = tmp_path / "r.jsonl"
    with path.open("a") as other_run:
        fcntl.flock(other_run.fileno(), fcntl.LOCK_EX)
        with pytest.raises(scale.ResultsFileError, match="another run is writing to .*r.jsonl"):
            scale.loc_pointing(resnet, items, results=path)
    assert scale.loc_pointing(resnet, items, results=path)["images"] == 4  # the lock went with the other run


class _KilledOnce(scale.ShapesItems):
    """Shapes scenes; the worker that loads image ``at`` first writes its PID to ``pid_file`` and
    waits, so that the test can SIGKILL it mid-run. The replacement worker finds the file and
    goes on."""

    def __init__(self, n, preprocess, pid_file, at):
        super().__init__(n, 20000, "single", preprocess)
        self.pid_file, self.at = pid_file, at

    def __getitem__(self, i):
        import os
        import time
        if int(i) == self.at:
            try:
                with open(self.pid_file, "x") as f:
                    f.write(str(os.getpid()))
            except FileExistsError:
                pass
            else:
                time.sleep(60)
        return super().__getitem__(i)


def _kill_when_written(pid_file, timeout=60):
    import os
    import signal
    import threading
    import time

    def kill():
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pid_file.exists() and pid_file.read_text():
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
                return
            time.sleep(0.05)

    t = threading.Thread(target=kill, daemon=True)
    t.start()
    return t


def test_a_killed_dataloader_worker_costs_nothing(tmp_path, resnet):
    """A worker SIGKILLed mid-run: the loader restarts on the images not yet done, and the final
    report equals an uninterrupted run's; the results file has each image once."""
    plain = scale.ShapesItems(24, 20000, "single", resnet.preprocess)
    whole = scale.loc_pointing(resnet, plain, batch=4)
    pid_file = tmp_path / "worker.pid"
    items = _KilledOnce(24, resnet.preprocess, pid_file, at=13)
    killer = _kill_when_written(pid_file)
    path = tmp_path / "r.jsonl"
    r = scale.loc_pointing(resnet, items, batch=4, workers=2, results=path)
    killer.join(1)
    assert pid_file.read_text() and r["worker_restarts"] == 1
    assert _strip(r) == _strip(whole)
    assert sorted(json.loads(x)["i"] for x in _lines(path)[1:]) == list(range(24))
    from evaluation.scale import faults
    assert faults(r) == ["restarted the image loader 1 time(s) after a worker died"]


@pytest.mark.slow
def test_a_killed_ray_actor_has_its_shard_run_again(tmp_path, resnet):
    """An actor SIGKILLed mid-shard: the shard runs again on a new actor, and the report equals
    the local, uninterrupted one."""
    import ray
    import sys
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test's items travel by value
    local = scale.loc_pointing(resnet, scale.ShapesItems(16, 20000, "single", resnet.preprocess), batch=4)
    pid_file = tmp_path / "actor.pid"
    items = _KilledOnce(16, resnet.preprocess, pid_file, at=5)
    killer = _kill_when_written(pid_file, timeout=180)
    distributed = scale.run_ray("shapes-resnet", items, shards=2, batch=4, num_cpus=2)
    killer.join(1)
    assert pid_file.read_text() and distributed["retried_shards"] == 1
    assert _strip(distributed) == _strip({**local, "engine": "ray", "shards": 2})


def test_faulty_annotations_cost_their_images_not_the_run(tmp_path, resnet):
    """The VOC faults of the field (no <bndbox>, no <xmin>, not a number, a directory, an empty
    box, a box outside the image): each image is skipped with its reason, the rest are scored."""
    from tests.voc_faults import write_faulty_folder
    reasons = write_faulty_folder(tmp_path)
    items = scale.FileItems(data.voc_folder(tmp_path), resnet.preprocess)
    r = scale.loc_pointing(resnet, items, batch=4, workers=1)
    assert r["images"] == 6 and {s["file"]: s["reason"] for s in r["skipped_files"]} == reasons


def test_read_voc_names_what_is_wrong(tmp_path):
    from model_zoo.shapes.voc import read_voc, scene_to_xml
    scene = make_scene(20000, 0, "single")
    xml = tmp_path / "a.xml"
    xml.write_text(scene_to_xml(scene, "a.png").replace("<width>64</width>", "<width>16</width>"))
    with pytest.raises(ValueError, match=r"a.xml: object 1 \(\w+\): its box \(\d+, \d+, \d+, \d+\) lies outside the "
                                         r"16x64 image its <size> declares"):
        read_voc(xml)
    xml.write_text(scene_to_xml(scene, "a.png").replace("<name>", "<name_>").replace("</name>", "</name_>"))
    with pytest.raises(ValueError, match=r"a.xml: object 1 has no <name>"):
        read_voc(xml)
    xml.write_text(scene_to_xml(scene, "a.png").replace("<width>64", "<width>wide"))
    with pytest.raises(ValueError, match=r"a.xml: <size>: <width> is not a number \('wide'\)"):
        read_voc(xml)
