"""python -m cli.explain: files written, numbers consistent with the library, one-line errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import explainers
import model_zoo
from cli.explain import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("ckpt") / "r18.pth"
    torch.save(torchvision.models.resnet18(num_classes=6).state_dict(), path)
    return path


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(folder / "b.jpg")
    return folder


def test_folder_top_k_two_methods(images, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main([str(images), "--model", "resnet18", "--weights", str(checkpoint), "--method",
               "gradcam,guided_gradcam", "--top-k", "2", "--out", str(out)])
    assert rc == 0
    assert "explaining" in capsys.readouterr().err  # the progress bar
    record = json.loads((out / "a.json").read_text())
    assert record["layer"] == "layer4" and len(record["maps"]) == 4
    assert len(record["weights_sha256"]) == 64
    # the .npy written equals the library's map for the same class
    loaded = model_zoo.load("resnet18", checkpoint)
    x = loaded.preprocess(Image.open(images / "a.png").convert("RGB")).unsqueeze(0)
    first = record["maps"][0]
    expected = explainers.explain(loaded.model, x, target=first["class_index"])
    np.testing.assert_allclose(np.load(out / first["npy"]), expected.attribution, rtol=1e-5, atol=1e-7)
    png = Image.open(out / first["png"])
    assert png.size == (224, 224) and png.mode == "RGB"
    ggc = next(m for m in record["maps"] if m["method"] == "guided_gradcam")
    assert np.load(out / ggc["npy"]).shape == (3, 224, 224)
    assert (out / "b.json").exists()


def test_explicit_targets_and_layer(images, checkpoint, tmp_path):
    out = tmp_path / "out"
    rc = main([str(images / "a.png"), "--model", "resnet18", "--weights", str(checkpoint),
               "--target", "3,class 5", "--layer", "layer3", "--out", str(out)])
    assert rc == 0
    record = json.loads((out / "a.json").read_text())
    assert [m["class_index"] for m in record["maps"]] == [3, 5]
    assert record["layer"] == "layer3"


@pytest.mark.parametrize("args, message", [
    (["--layer", "layer9"], "error: layer 'layer9' not found"),
    (["--target", "6"], "error: class index 6 out of range"),
    (["--target", "zebra"], "error: no class named 'zebra'"),
    (["--target", "class"], "error: class name 'class' is ambiguous"),
    (["--method", "gradcam++"], "error: unknown method 'gradcam++'"),
    (["--alpha", "2"], "error: --alpha must be within [0, 1]"),
])
def test_bad_arguments_one_line(images, checkpoint, capsys, args, message):
    rc = main([str(images), "--model", "resnet18", "--weights", str(checkpoint), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith(message)


def test_bad_inputs(tmp_path, checkpoint, capsys):
    (tmp_path / "note.png").write_text("not an image")
    rc = main([str(tmp_path / "note.png"), "--model", "resnet18", "--weights", str(checkpoint),
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and "note.png: not an image file" in err and "1 of 1 image(s) could not be read" in err
    rc = main([str(tmp_path / "missing"), "--model", "resnet18", "--weights", str(checkpoint)])
    assert rc == 1 and "no such file or folder" in capsys.readouterr().err
    rc = main(["x.png", "--model", "nonet"])
    assert rc == 1 and "unknown model 'nonet'" in capsys.readouterr().err


def test_module_entry_point_lists_models():
    proc = subprocess.run([sys.executable, "-m", "cli.explain", "--list-models"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "resnet50" in proc.stdout and "convnext_tiny" in proc.stdout


def test_list_layers_needs_no_weights(tmp_path, monkeypatch, capsys):
    """--list-layers failed without the weights, which the layers do not depend on."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing downloaded here
    assert not model_zoo.weights_available("resnet50")
    assert main(["--model", "resnet50", "--list-layers"]) == 0
    out = capsys.readouterr().out
    assert "layer4.2.relu (ReLU, 2048x7x7)" in out and not (tmp_path / "torch").exists()


def test_list_layers(checkpoint, capsys):
    assert main(["--model", "resnet18", "--weights", str(checkpoint), "--list-layers"]) == 0
    out = capsys.readouterr().out
    assert "layer4 (Sequential, 512x7x7)  (default)" in out and "layer2 (Sequential, 128x28x28)" in out


def test_inputs_with_the_same_stem_keep_their_own_outputs(tmp_path, checkpoint):
    """ok.png and ok.jpg used to write the same ok_*.png/.npy/.json, the second silently
    overwriting the first, with exit 0."""
    folder = tmp_path / "same"
    folder.mkdir()
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "ok.png")
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(folder / "ok.jpg")
    out = tmp_path / "out"
    assert main([str(folder), "--model", "resnet18", "--weights", str(checkpoint), "--target", "0",
                 "--out", str(out)]) == 0
    records = sorted(out.glob("*.json"))
    assert [r.name for r in records] == ["ok_jpg.json", "ok_png.json"]
    arrays = {}
    for r in records:
        rec = json.loads(r.read_text())
        (entry,) = rec["maps"]
        arrays[Path(rec["image"]).name] = np.load(out / entry["npy"])
        assert (out / entry["png"]).is_file()
    assert not np.allclose(arrays["ok.png"], arrays["ok.jpg"])  # two different images, two maps


@pytest.mark.slow
def test_strip_image_is_refused_with_little_memory(tmp_path):
    """A 60000 x 1 PNG of a few hundred bytes resized for ImageNet would be 15 million x 256 px
    (about 3 GB): refused by its aspect ratio before any resize; peak memory measured by
    /usr/bin/time -v stays under 1.2 GB (it was 2.9 GB)."""
    strip = tmp_path / "strip.png"
    Image.new("L", (60000, 1)).save(strip)
    assert strip.stat().st_size < 1000
    time_bin = Path("/usr/bin/time")
    cmd = [sys.executable, "-m", "cli.explain", str(strip), "--model", "resnet18", "--weights", "untrained",
           "--out", str(tmp_path / "o")]
    if time_bin.exists():
        cmd = [str(time_bin), "-v", *cmd]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "strip.png: 60000 x 1 pixels is a strip (aspect ratio 60000:1)" in proc.stderr
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
    if time_bin.exists():
        peak_kb = int(next(line for line in proc.stderr.splitlines() if "Maximum resident set size" in line)
                      .split(":")[1])
        assert peak_kb < 1.2 * 2**20, f"peak {peak_kb / 2**20:.2f} GB"


def test_list_methods_is_the_registry(capsys):
    assert main(["--list-methods"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == explainers.method_names()
    assert any(line.startswith("eigencam") and "not class-discriminative" in line for line in lines)


def test_method_options_reach_the_methods_and_heavy_ones_show_progress(tmp_path, capsys):
    from model_zoo import shapes
    _, scene = shapes.gallery()[0]
    Image.fromarray(scene.image).save(tmp_path / "s.png")
    out = tmp_path / "out"
    rc = main([str(tmp_path / "s.png"), "--model", "shapes-resnet", "--method", "integrated_gradients,scorecam",
               "--option", "steps=8", "--option", "batch_size=16", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "integrated_gradients" in err and "8/8" in err and "128/128" in err  # progress bars of both
    record = json.loads((out / "s.json").read_text())
    ig = next(m for m in record["maps"] if m["method"] == "integrated_gradients")
    assert ig["options"] == {"steps": 8, "baseline": 0.0, "quadrature": "gausslegendre", "batch_size": 16}
    assert ig["layer"] is None
    loaded = model_zoo.load("shapes-resnet")
    x = loaded.preprocess(Image.open(tmp_path / "s.png").convert("RGB")).unsqueeze(0)
    ref = explainers.explain(loaded.model, x, method="integrated_gradients", target=ig["class_index"], steps=8)
    np.testing.assert_allclose(np.load(out / ig["npy"]), ref.attribution, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("option,message", [
    ("steps", "--option takes NAME=VALUE, got 'steps'"),
    ("colour=red", "no chosen method has the option(s) colour; their options: baseline, batch_size, quadrature, steps"),
    ("steps=many", "integrated_gradients: steps must be an integer >= 1, got 'many'"),
])
def test_bad_method_options_are_one_line(tmp_path, capsys, option, message):
    Image.new("RGB", (64, 64)).save(tmp_path / "s.png")
    rc = main([str(tmp_path / "s.png"), "--model", "shapes-resnet", "--method", "integrated_gradients",
               "--option", option, "--out", str(tmp_path / "o")])
    assert rc == 1 and message in capsys.readouterr().err


def test_caption_and_question_flags(tmp_path, capsys):
    from model_zoo.shapes import language as L
    scene = L.make_described(2024, 1, "pair")
    Image.fromarray(scene.image).save(tmp_path / "s.png")
    out = tmp_path / "out"
    assert main([str(tmp_path / "s.png"), "--model", "shapes-captioner", "--caption", scene.caption,
                 "--out", str(out)]) == 0
    record = json.loads((out / "s.json").read_text())
    assert record["caption"] == scene.caption
    words = scene.caption.split()
    assert [m["class_name"] for m in record["maps"]] == ["caption"] + [f"word{i + 1}-{w}" for i, w in enumerate(words)]
    loaded = model_zoo.load("shapes-captioner")
    x = loaded.preprocess(Image.open(tmp_path / "s.png").convert("RGB")).unsqueeze(0)
    tokens = L.encode_caption(scene.caption)
    whole = explainers.explain(loaded.model, x, layer="layer3", target=explainers.CaptionLogProb(tokens))
    assert record["maps"][0]["score"] == pytest.approx(whole.score, rel=1e-5)
    q = f"what colour is the {scene.objects[0].name}"
    assert main([str(tmp_path / "s.png"), "--model", "shapes-vqa", "--question", q, "--answer", "red",
                 "--method", "gradcam,guided_gradcam", "--out", str(out)]) == 0
    record = json.loads((out / "s.json").read_text())
    assert record["question"] == q and record["answer"] == "red" and len(record["maps"]) == 2
    capsys.readouterr()
    assert main([str(tmp_path / "s.png"), "--model", "shapes-vqa", "--out", str(out)]) == 1
    assert "give one with --question" in capsys.readouterr().err
    assert main([str(tmp_path / "s.png"), "--model", "shapes-vqa", "--question", "why", "--out", str(out)]) == 1
    assert "unknown word(s) 'why'" in capsys.readouterr().err
    assert main([str(tmp_path / "s.png"), "--model", "shapes-resnet", "--caption", "a circle", "--out", str(out)]) == 1
    assert "are for captioning and VQA models" in capsys.readouterr().err
    # a flag of the other task is refused, not ignored
    assert main([str(tmp_path / "s.png"), "--model", "shapes-captioner", "--question", "how many objects",
                 "--out", str(out)]) == 1
    assert "--question and --answer are for VQA models; shapes-captioner writes captions" in capsys.readouterr().err
    assert main([str(tmp_path / "s.png"), "--model", "shapes-captioner", "--answer", "red", "--out", str(out)]) == 1
    assert "are for VQA models" in capsys.readouterr().err
    assert main([str(tmp_path / "s.png"), "--model", "shapes-vqa", "--question", q, "--caption", "a red circle",
                 "--out", str(out)]) == 1
    assert "--caption is for captioning models; shapes-vqa answers questions" in capsys.readouterr().err
    # a caption over the bound: one line that says the bound, no traceback
    assert main([str(tmp_path / "s.png"), "--model", "shapes-captioner", "--caption", "a red circle " * 9,
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"at most {L.MAX_CAPTION_WORDS} words" in err and "Traceback" not in err


@pytest.mark.parametrize("module, args, listed", [
    ("bench.__main__", [], ("heavy", "evaluation", "browser", "language", "field")),
    ("cli.evaluate", [], ("diagnose", "scale", "photos")),
    ("bench.__main__", ["heavy"], ()), ("bench.__main__", ["evaluation"], ()), ("bench.__main__", ["browser"], ()),
    ("bench.__main__", ["field"], ()), ("bench.__main__", ["language"], ()), ("cli.evaluate", ["diagnose"], ()),
    ("cli.evaluate", ["scale"], ()), ("cli.evaluate", ["photos"], ()), ("cli.shapes", [], ("export", "train", "table")),
    ("cli.explain", [], ()),
])
def test_every_help_lists_its_commands_and_ends_its_sentences(module, args, listed, capsys):
    """--help of the top-level commands lists their subcommands; no description is cut
    mid-sentence (the first line of a docstring was)."""
    import importlib
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit):
        main([*args, "--help"])
    text = capsys.readouterr().out
    description = text.split("\n\n")[1].strip()
    assert description[-1] in ".?:)", description
    for name in listed:
        assert f"\n  {name} " in text or f"{{{name}," in text or f",{name}" in text, (name, text)


def test_the_readme_makes_a_captioning_scene_and_explains_it(tmp_path, capsys):
    """README: `shapes export --world language` writes the described scenes the captioner and the
    VQA model read, with their captions, questions and answers; the CLI explains them."""
    import csv
    import json
    import numpy as np
    from PIL import Image
    from model_zoo.shapes import language
    from cli.shapes import main as shapes_main
    out = tmp_path / "scenes"
    assert shapes_main(["export", "--world", "language", "--kind", "pair", "--n", "2", "--seed", "20000",
                        "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "captions.csv").open()))
    scene = language.make_described(20000, 0, "pair")
    assert rows[0]["file"] == "pair_20000_000000.png" and rows[0]["caption"] == scene.caption
    assert json.loads(rows[0]["questions"]) == {q.text: q.answer for q in language.questions(scene)}
    image = out / "images" / "pair_20000_000000.png"
    assert np.array_equal(np.asarray(Image.open(image)), scene.image)
    assert main([str(image), "--model", "shapes-captioner", "--out", str(tmp_path / "cap")]) == 0
    colour = next(q for q in language.questions(scene) if q.kind == "colour_of_shape")
    assert main([str(image), "--model", "shapes-vqa", "--question", colour.text, "--answer", colour.answer,
                 "--out", str(tmp_path / "vqa")]) == 0
    assert list((tmp_path / "cap").glob("*.npy")) and list((tmp_path / "vqa").glob("*.npy"))


def test_the_cli_and_evaluation_use_the_cores_that_are_free(tmp_path, monkeypatch):
    """On a busy machine ./studio eval on a shapes model ran ~3x slower on 2 threads than on 1;
    on an idle one 1 thread was 1.7x slower. The command lines take the cores other processes
    leave free when they start (model_zoo.threads.for_batch_work)."""
    import torch
    from PIL import Image
    from cli.evaluate import main as eval_main
    from model_zoo import threads
    asked = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)  # recorded, not applied
    img = tmp_path / "a.png"
    Image.new("RGB", (64, 64), (30, 120, 200)).save(img)
    monkeypatch.setattr(threads, "free_cores", lambda: 0.1)  # busy: two other processes on two cores
    assert main([str(img), "--model", "shapes-resnet", "--out", str(tmp_path / "o")]) == 0
    assert eval_main(["--model", "shapes-weak", "--methods", "gradcam", "--n", "2", "--out",
                      str(tmp_path / "r.json")]) == 0
    assert asked == [1, 1]
    monkeypatch.setattr(threads, "free_cores", lambda: 64.0)  # idle, and more cores than torch's threads
    assert main([str(img), "--model", "shapes-resnet", "--out", str(tmp_path / "o")]) == 0
    assert asked[-1] == threads.ALL_THREADS


def test_free_cores_read_the_machine():
    from model_zoo import threads
    free = threads.free_cores(0.05)
    assert free is None or 0.0 <= free <= (os.cpu_count() or 1) + 1e-9
    assert [threads.for_batch_work(f) for f in (0.0, 0.4, 0.6)] == [1, 1, min(1, threads.ALL_THREADS)]
    assert threads.for_batch_work(1.6) == min(2, threads.ALL_THREADS)


@pytest.mark.skipif(not model_zoo.weights_available("shapes-clip"), reason="shapes-clip not trained")
def test_text_flag_maps_each_phrase(tmp_path, capsys):
    """Issue 29: --text (several allowed) for image-text models, each phrase's similarity in the
    record and its map beside it; unknown words named; --text on a classifier refused."""
    from explainers import text as T
    from model_zoo.shapes import language as L
    scene = L.make_described(2024, 3, "pair")
    Image.fromarray(scene.image).save(tmp_path / "s.png")
    out = tmp_path / "out"
    a, b = scene.objects
    texts = [f"{a.colour} {a.name}", f"the {b.size} {b.colour} {b.name}"]
    assert main([str(tmp_path / "s.png"), "--model", "shapes-clip", "--text", texts[0], "--text", texts[1],
                 "--out", str(out)]) == 0
    record = json.loads((out / "s.json").read_text())
    assert record["texts"] == texts
    assert [m["class_name"] for m in record["maps"]] == ["text1-" + texts[0], "text2-" + texts[1]]
    loaded = model_zoo.load("shapes-clip")
    x = loaded.preprocess(Image.open(tmp_path / "s.png").convert("RGB")).unsqueeze(0)
    sims = T.similarities(loaded.model, x, texts)[0]
    assert [record["similarities"][t] for t in texts] == pytest.approx(sims.tolist(), abs=1e-6)
    assert [m["score"] for m in record["maps"]] == pytest.approx(sims.tolist(), abs=1e-6)
    assert all((out / m["png"]).is_file() for m in record["maps"])
    capsys.readouterr()
    assert main([str(tmp_path / "s.png"), "--model", "shapes-clip", "--text", "a red dog", "--out", str(out)]) == 1
    assert "unknown word(s) 'dog'" in capsys.readouterr().err
    assert main([str(tmp_path / "s.png"), "--model", "shapes-resnet", "--text", "a circle", "--out", str(out)]) == 1
    assert "--text is for image-text models" in capsys.readouterr().err
    assert main([str(tmp_path / "s.png"), "--model", "shapes-clip", "--out", str(out)]) == 0  # the default prompts
    assert json.loads((out / "s.json").read_text())["texts"] == list(loaded.categories)
