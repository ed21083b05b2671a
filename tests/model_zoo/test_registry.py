"""The registry: entries, torchvision's weights path offline, user checkpoints, unsafe files."""
import os
import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

import explainers
import model_zoo
from model_zoo import WeightsError, WeightsUnavailable, ZooError

REQUIRED = ["resnet18", "resnet50", "vgg16", "alexnet", "densenet121", "googlenet",
            "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "vit_b_16", "swin_t"]


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def test_required_entries_registered():
    ids = model_zoo.list_models()
    assert set(REQUIRED) <= set(ids)
    assert set(model_zoo.list_models("imagenet")) >= set(REQUIRED)


@pytest.mark.parametrize("model_id", REQUIRED)
def test_imagenet_entry_metadata_and_default_layer(model_id):
    spec = model_zoo.get_spec(model_id)
    assert spec.num_classes == 1000 and spec.categories[0] == "tench"
    assert spec.preprocess.crop == 224
    loaded = model_zoo.load(model_id, model_zoo.UNTRAINED)
    assert "untrained" in loaded.weights and not loaded.model.training
    # the registry's default layer is what automatic discovery finds
    assert explainers.default_layer(loaded.model) == spec.default_layer
    with torch.no_grad():
        assert loaded.model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_unknown_model_id():
    with pytest.raises(ZooError, match=r"unknown model 'resnet1000'; registered: .*shapes-resnet") as err:
        model_zoo.load("resnet1000")
    assert "resnet18" in str(err.value)


def test_torchvision_weights_path_offline(torch_home):
    """A state dict at $TORCH_HOME/hub/checkpoints/<file name of the weights URL> is what
    torchvision's own loader reads; the registry loads it from there without the network."""
    spec = model_zoo.get_spec("resnet18")
    assert not model_zoo.weights_available("resnet18")
    torch.manual_seed(5)
    reference = torchvision.models.resnet18()
    path = torch_home / "hub" / "checkpoints" / Path(spec.weights_url).name
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    assert spec.weights_file() == path and model_zoo.weights_available("resnet18")
    loaded = model_zoo.load("resnet18")
    for (k, a), b in zip(reference.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert loaded.sha256 == model_zoo.weights.sha256_of(path)
    assert loaded.categories[1] == "goldfish" and loaded.default_layer == "layer4"


def test_googlenet_checkpoint_with_aux_heads(torch_home):
    spec = model_zoo.get_spec("googlenet")
    ref = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    assert any(k.startswith("aux1.") for k in ref.state_dict())
    path = spec.weights_file()
    path.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), path)
    loaded = model_zoo.load("googlenet")
    assert loaded.model.aux1 is None
    torch.testing.assert_close(loaded.model.fc.weight, ref.fc.weight)


def test_missing_weights_say_where_to_put_them(torch_home, monkeypatch):
    with pytest.raises(WeightsUnavailable, match=r"not on this machine; expected .*checkpoints/resnet50-"):
        model_zoo.load("resnet50", download=False)

    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError(OSError("network is unreachable"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(WeightsUnavailable, match=r"^cannot download https://download.pytorch.org/models/resnet50-"
                                                 r"11ad3fa6.pth \(network is unreachable\): offline\? Download .* and "
                                                 r"save it as .*resnet50-11ad3fa6.pth$"):
        model_zoo.load("resnet50")
    checkpoints = torch_home / "hub" / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())  # nothing half-written


def test_user_checkpoint_with_its_own_classes(tmp_path):
    torch.manual_seed(1)
    net = torchvision.models.resnet18(num_classes=10)
    path = tmp_path / "mine.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    loaded = model_zoo.load("resnet18", path)
    assert len(loaded.categories) == 10 and loaded.categories[0] == "class 0"
    named = model_zoo.load("resnet18", path, categories=[f"c{i}" for i in range(10)])
    assert named.categories[3] == "c3"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), net.eval()(x))


def test_other_architecture_state_dict(tmp_path):
    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)
    with pytest.raises(WeightsError) as info:
        model_zoo.load("resnet18", path)
    msg = str(info.value)
    assert "does not fit the resnet18 architecture" in msg
    assert "missing keys: conv1.weight" in msg and "unexpected keys: features.0.0.weight" in msg


def test_shape_mismatch_named(tmp_path):
    sd = torchvision.models.resnet18().state_dict()
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"shape mismatches.*layer1.0.conv1.weight \(64, 64, 5, 5\) != \(64, 64, 3, 3\)"):
        model_zoo.load("resnet18", path)


def test_corrupt_weights_file(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(torchvision.models.resnet18().state_dict(), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="truncated.pth is not a readable PyTorch weights file"):
        model_zoo.load("resnet18", truncated)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(os.urandom(2048))
    with pytest.raises(WeightsError, match="garbage.pth is not a readable PyTorch weights file"):
        model_zoo.load("resnet18", garbage)
    with pytest.raises(WeightsError, match="does not exist"):
        model_zoo.load("resnet18", tmp_path / "nope.pth")
    tensor_only = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        model_zoo.load("resnet18", tensor_only)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_pickle_that_would_execute_code_is_refused(tmp_path):
    marker = tmp_path / "marker.txt"
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Exploit(str(marker))}, evil)
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Exploit(str(marker)), protocol=2))
    for path in (evil, raw):
        with pytest.raises(WeightsError, match="refused to load .*could execute code"):
            model_zoo.load("resnet18", path)
    assert not marker.exists()


def test_preprocess_numbers():
    pre = model_zoo.get_spec("resnet18").preprocess
    image = Image.new("RGB", (300, 200), (255, 128, 0))
    shown = pre.display(image)
    assert shown.size == (224, 224)
    x = pre(image)
    assert x.shape == (3, 224, 224)
    expected = [(1.0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0.0 - 0.406) / 0.225]
    torch.testing.assert_close(x.mean((1, 2)), torch.tensor(expected), rtol=1e-5, atol=1e-5)
    assert pre.batch([image, image]).shape == (2, 3, 224, 224)


class _System:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


class _TorchHub:  # a torch function: inside the torch package, still not a tensor rebuilder
    def __reduce__(self):
        return (torch.hub.load, ("someone/repo", "model"))


class _TorchSeed:
    def __reduce__(self):
        return (torch.random.manual_seed, (1,))


@pytest.mark.parametrize("payload", [_Exploit, _System, _Eval, _TorchHub, _TorchSeed])
def test_exploit_pickles_of_both_torch_formats_are_named(tmp_path, payload):
    """Each exploit, saved by torch in the zip format and in the legacy format and as raw pickles
    of protocols 0-5, is named as code that would run: never 'corrupt', never torch's advice to
    retry with weights_only=False."""
    marker = tmp_path / "marker.txt"
    obj = payload(str(marker)) if payload is _Exploit else payload()
    named = {_TorchHub: "torch.hub.load", _TorchSeed: "torch.random.manual_seed"}.get(payload)
    files = []
    for legacy in (False, True):
        f = tmp_path / f"evil_{'legacy' if legacy else 'zip'}.pth"
        torch.save({"conv1.weight": torch.zeros(1), "payload": obj}, f, _use_new_zipfile_serialization=not legacy)
        files.append(f)
    for protocol in range(6):
        f = tmp_path / f"evil_p{protocol}.pkl"
        f.write_bytes(pickle.dumps(obj, protocol=protocol))
        files.append(f)
    for f in files:
        with pytest.raises(WeightsError) as err:
            model_zoo.load("resnet18", f)
        text = str(err.value)
        assert text.startswith(f"refused to load {f.name}: it would import "), text
        assert "could execute code" in text and "weights_only" not in text and "corrupt" not in text, text
        assert named is None or named in text, text
    assert not marker.exists()


def test_text_file_is_not_a_weights_file(tmp_path):
    f = tmp_path / "notes.pth"
    f.write_text("101 reasons to keep notes\nnot weights\n")
    with pytest.raises(WeightsError, match=r"^notes.pth is a text file, not a PyTorch weights file$"):
        model_zoo.load("resnet18", f)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty.pth is empty"):
        model_zoo.load("resnet18", empty)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_state_dict_with_non_finite_values_is_refused(tmp_path, bad):
    sd = torchvision.models.resnet18().state_dict()
    sd["layer2.0.conv1.weight"][0, 0, 0, 0] = bad
    f = tmp_path / "broken.pth"
    torch.save(sd, f)
    with pytest.raises(WeightsError, match=r"broken.pth holds NaN or infinite values in layer2.0.conv1.weight"):
        model_zoo.load("resnet18", f)
