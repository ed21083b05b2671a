"""Models from code: the example plugin (a path in STUDIO_MODELS), a dotted module, an installed
package's entry point; broken plugins are messages; re-registering is idempotent."""
import sys
import textwrap
from functools import partial
from pathlib import Path

import pytest
import torch

import explainers
import model_zoo
from model_zoo import registry
from tests.explainers.test_hygiene import _assert_same, _prepare
from tests.conftest import model_state

# the methods for CNNs: LeGrad reads attention (tests/explainers/test_legrad.py has it on ViTs)
CNN_METHODS = [m.name for m in explainers.list_methods() if not m.transformers_only]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "cifar_plugin.py")


@pytest.fixture
def example(monkeypatch):
    monkeypatch.setenv("STUDIO_MODELS", EXAMPLE)
    model_zoo.load_plugins()
    assert "example-cifar" in model_zoo.list_models()
    return model_zoo.load("example-cifar")


def test_example_plugin_is_a_model_like_the_others(example):
    spec = model_zoo.get_spec("example-cifar")
    assert spec.family == "plugin" and spec.categories[0] == "airplane" and spec.untrained
    assert example.weights == "untrained (random initialisation)"  # named as such, never hidden
    x = torch.randn(2, 3, 32, 32)
    e = explainers.explain(example.model, x, target=3)
    assert e.layer == "16" and e.attribution.shape == (2, 32, 32)  # default layer found: the last 8x8 ReLU


@pytest.mark.parametrize("method", CNN_METHODS)
def test_example_plugin_model_comes_back_unchanged(example, method):
    model = _prepare(example.model)
    before = model_state(model)
    explainers.explain(model, torch.randn(1, 3, 32, 32), method=method, target=[1, 2])
    _assert_same(before, model_state(model))


def test_example_plugin_in_the_cli(monkeypatch, capsys, tmp_path):
    from cli.explain import main
    from PIL import Image
    monkeypatch.setenv("STUDIO_MODELS", EXAMPLE)
    assert main(["--list-models"]) == 0
    assert "example-cifar" in capsys.readouterr().out
    Image.new("RGB", (40, 32), (200, 30, 30)).save(tmp_path / "x.png")
    assert main([str(tmp_path / "x.png"), "--model", "example-cifar", "--out", str(tmp_path / "o")]) == 0
    assert list((tmp_path / "o").glob("x_gradcam_*.npy"))


def test_broken_plugins_are_messages(monkeypatch, tmp_path):
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("import nonexistent_package_xyz\n")
    monkeypatch.setenv("STUDIO_MODELS", f"{bad},no.such.module, {tmp_path / 'missing.py'}")
    model_zoo.load_plugins()
    errors = model_zoo.plugin_errors()
    assert errors[str(bad)] == "ModuleNotFoundError: No module named 'nonexistent_package_xyz'"
    assert errors["no.such.module"].startswith("ModuleNotFoundError")
    assert errors[str(tmp_path / "missing.py")].startswith("FileNotFoundError: no such file")
    assert "shapes-resnet" in model_zoo.list_models()  # the rest of the zoo is unharmed


def test_a_plugin_that_exits_or_is_interrupted_is_a_message_naming_it(monkeypatch, tmp_path, capsys):
    """sys.exit() in a plugin made the CLI exit 3 silently; KeyboardInterrupt gave a traceback."""
    from cli.explain import main
    exits, stops = tmp_path / "exits_plugin.py", tmp_path / "stops_plugin.py"
    exits.write_text("import sys\nsys.exit(3)\n")
    stops.write_text("raise KeyboardInterrupt\n")
    monkeypatch.setenv("STUDIO_MODELS", f"{exits},{stops}")
    assert main(["--list-models"]) == 0
    captured = capsys.readouterr()
    assert "shapes-resnet" in captured.out
    assert f"plugin {exits} could not be loaded (it called sys.exit(3) while being imported)" in captured.err
    assert f"plugin {stops} could not be loaded (it raised KeyboardInterrupt while being imported)" in captured.err


def test_an_upload_of_a_plugin_architecture_survives_a_restart(monkeypatch, tmp_path):
    """Saved uploads were registered before the plugins loaded: one of a plugin's architecture
    was lost at every restart."""
    plugin = tmp_path / "arch_plugin.py"
    plugin.write_text(textwrap.dedent('''
        from torch import nn
        import model_zoo
        model_zoo.register_model("arch-net", lambda n: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, n)),
                                 categories=["x", "y"], weights="untrained")
    '''))
    monkeypatch.setenv("STUDIO_MODELS", str(plugin))
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tmp_path / "models"))
    model_zoo.load_plugins()
    import io
    buf = io.BytesIO()
    torch.save(model_zoo.load("arch-net").model.state_dict(), buf)
    assert model_zoo.save_upload("archup", "arch-net", buf.getvalue()) == "my:archup"
    # a restart: an empty registry of plugins and uploads, and nothing imported yet
    saved = dict(registry._REGISTRY)
    for mid in ("arch-net", "my:archup"):
        registry._REGISTRY.pop(mid)
    monkeypatch.setattr(registry, "_PLUGINS_LOADED", set())
    monkeypatch.setitem(registry._REFRESH, "done", False)
    sys.modules.pop("gradcam_studio_plugin_arch_plugin", None)
    try:
        assert "my:archup" in model_zoo.list_models()
        assert "archup" not in model_zoo.uploads.errors
        assert model_zoo.load("my:archup").categories == ("x", "y")
    finally:
        for mid in ("arch-net", "my:archup"):
            registry._REGISTRY.pop(mid, None)
        assert saved  # (the rest of the registry is untouched)


def test_dotted_module_and_entry_point(monkeypatch, tmp_path):
    (tmp_path / "dotted_plugin_mod.py").write_text(textwrap.dedent('''
        import model_zoo
        from torch import nn
        model_zoo.register_model("dotted-net", lambda n: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, n)),
                                 categories=["a", "b"], weights="untrained")
    '''))
    (tmp_path / "ep_plugin_mod.py").write_text(textwrap.dedent('''
        import model_zoo
        from torch import nn
        def register():
            model_zoo.register_model("entry-point-net", lambda n: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, n)),
                                     categories=["x", "y", "z"], weights="untrained")
    '''))
    dist = tmp_path / "ep_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{model_zoo.ENTRY_POINT_GROUP}]\nnets = ep_plugin_mod:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("STUDIO_MODELS", "dotted_plugin_mod")
    model_zoo.load_plugins()
    models = model_zoo.list_models()
    assert "dotted-net" in models and "entry-point-net" in models
    assert model_zoo.load("entry-point-net").categories == ("x", "y", "z")
    for mid in ("dotted-net", "entry-point-net"):
        registry._REGISTRY.pop(mid)


def test_registering_is_idempotent_and_a_taken_id_is_an_error():
    import importlib
    import model_zoo.shapes
    before = model_zoo.list_models()
    importlib.reload(model_zoo.shapes)  # a re-import registers the same entries again: no-op
    assert model_zoo.list_models() == before
    spec = model_zoo.get_spec("shapes-weak")
    from dataclasses import replace
    assert model_zoo.register(replace(spec)) is spec
    with pytest.raises(ValueError, match=r"model id 'shapes-weak' is already registered .* choose another id"):
        model_zoo.register(replace(spec, default_layer="layer2"))
    with pytest.raises(ValueError, match="already registered"):
        model_zoo.register_model("shapes-weak", partial(torch.nn.Linear, 3), categories=["a"])


def test_notes_about_models_never_land_beside_the_shipped_weights(monkeypatch, tmp_path):
    """Dissection caches were written into model_zoo/shapes/weights (the source tree)."""
    shipped = model_zoo.get_spec("shapes-resnet").weights_file().parent
    monkeypatch.setenv("STUDIO_NOTES_DIR", str(tmp_path / "notes"))
    assert model_zoo.notes_path("shapes-resnet", "dissection-layer3") == tmp_path / "notes" / \
        "shapes-resnet.dissection-layer3.json"
    monkeypatch.delenv("STUDIO_NOTES_DIR")
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tmp_path / "models"))
    path = model_zoo.notes_path("shapes-resnet", "dissection-layer3")
    assert path.parent == tmp_path / "models" / "notes" and shipped not in path.parents


def test_the_suite_writes_only_to_temporary_places():
    """tests/conftest.py points the studies database, saved uploads and notes at this session's
    scratch folder, so no test (nor an app server a browser test starts) opens the user's own."""
    import os
    import studies
    from tests.conftest import SCRATCH
    root = Path(__file__).resolve().parents[2]
    assert studies.default_url() == f"sqlite:///{SCRATCH / 'studies.sqlite'}"
    for name in ("STUDIO_MODELS_DIR", "STUDIO_NOTES_DIR"):
        assert Path(os.environ[name]).is_relative_to(SCRATCH) and not Path(os.environ[name]).is_relative_to(root)
