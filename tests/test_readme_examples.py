"""The README's 'Explain your own model' examples, run as written (each in a fresh process, in a
temporary folder)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```python\n# readme-example: (\w+)[^\n]*\n(.*?)```", re.S)


def _examples() -> dict[str, str]:
    return {name: code for name, code in BLOCK.findall((ROOT / "README.md").read_text())}


def _run(args, cwd, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_readme_has_the_three_routes():
    assert set(_examples()) == {"checkpoint", "plugin", "timm"}


def test_checkpoint_example(tmp_path):
    proc = _run([sys.executable, "-c", _examples()["checkpoint"]], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    layer, shape, *_ = proc.stdout.split(" ")
    assert layer == "layer4" and "(224," in proc.stdout
    from PIL import Image
    Image.new("RGB", (320, 240), "orange").save(tmp_path / "photo.jpg")
    line = "./studio cli photo.jpg --model resnet18 --weights my_resnet18.pth"
    assert line in (ROOT / "README.md").read_text()
    cli = _run([sys.executable, "-m", "cli.explain", *line.split()[2:]], tmp_path)  # what ./studio cli runs
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert list((tmp_path / "gradcam-out").glob("photo_gradcam_*.npy"))


@pytest.mark.slow
def test_plugin_example(tmp_path):
    (tmp_path / "my_models.py").write_text(_examples()["plugin"])
    proc = _run([sys.executable, "-m", "cli.explain", "--list-models"], tmp_path, {"STUDIO_MODELS": "my_models.py"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"^my-net\s", proc.stdout, re.M)
    code = ("import torch, explainers, model_zoo; lm = model_zoo.load('my-net'); "
            "e = explainers.explain(lm.model, torch.randn(1, 3, 112, 112)); print(lm.weights, e.layer)")
    proc = _run([sys.executable, "-c", code], tmp_path, {"STUDIO_MODELS": "my_models.py"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "untrained (random initialisation) 3"


def test_timm_example(tmp_path):
    pytest.importorskip("timm")
    proc = _run([sys.executable, "-c", _examples()["timm"]], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["layer4", "235", "224"]
