import atexit
import copy
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from tests.pgserver import own_postgres  # noqa: F401  (a PostgreSQL server a test owns)

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _threads_as_they_were():
    """Each test starts on the suite's two threads: the command lines run in-process here set
    torch's threads to the cores free when they start (model_zoo.threads.for_batch_work), 1 on a
    loaded machine, which leaked into the tests after them (a CI run with other work on the
    cores failed the one-thread test of small models)."""
    yield
    if torch.get_num_threads() != 2:
        torch.set_num_threads(2)

# The suite writes only to temporary places: the studies database, saved uploads and notes about
# models (dissections) go to a folder of this test session, also for the app servers the browser
# tests start (they inherit the environment). A user's data/studies.sqlite, data/models and the
# shipped weights' folder are never touched, whatever STUDIO_* the user's shell has set.
SCRATCH = Path(tempfile.mkdtemp(prefix="studio-tests-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
os.environ.update(STUDIO_DB_URL=f"sqlite:///{SCRATCH / 'studies.sqlite'}", STUDIO_MODELS_DIR=str(SCRATCH / "models"),
                  STUDIO_NOTES_DIR=str(SCRATCH / "notes"))


class HandNet(nn.Module):
    """1 input channel, 2 x 2 images. conv 1x1 with weights (+1, -1) -> ReLU -> feat (Identity,
    the explained layer) -> flatten -> fc (8 -> 2), weights chosen so every map is hand-computable
    (see test_handcomputed.py). ``relu`` picks how the ReLU is written; its activations stay below 6,
so ReLU6 (the mobile networks') computes the same maps."""

    V = torch.tensor([
        [1., -1., 2., 2., -4., 0., 2., -2.],   # class 0: alpha = (1, -1)
        [0., 0., 0., -4., 2., 2., 2., 2.],     # class 1: alpha = (-1, 2)
    ])

    def __init__(self, relu: str = "module"):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        self.relu_kind = relu
        self.relu = nn.ReLU6(inplace=True) if relu == "relu6" else nn.ReLU(inplace=(relu == "inplace"))
        self.feat = nn.Identity()
        self.fc = nn.Linear(8, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1., -1.]).view(2, 1, 1, 1))
            self.fc.weight.copy_(self.V)

    def forward(self, x):
        a = self.conv(x)
        if self.relu_kind in ("module", "inplace", "relu6"):
            a = self.relu(a)
        elif self.relu_kind == "functional":
            a = F.relu(a)
        elif self.relu_kind == "functional_inplace":
            a = F.relu(a, inplace=True)
        elif self.relu_kind == "functional_relu6":
            a = F.relu6(a)
        elif self.relu_kind == "method":
            a = a.relu()
        a = self.feat(a)
        return self.fc(a.flatten(1))


HAND_X = torch.tensor([[[[1., 2.], [-1., 3.]]]])


class TinyVGG(nn.Module):
    """Conv features and a fully connected head with ReLUs after the explained layer (where CAM
    does not apply and the guided/exact gradient switch matters)."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 8 * 8, 32), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(32, classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@pytest.fixture
def hand_net():
    return HandNet().eval()


@pytest.fixture
def tiny_vgg():
    torch.manual_seed(0)
    return TinyVGG().eval()


@pytest.fixture(scope="session")
def resnet18_shared():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=20).eval()


@pytest.fixture
def resnet18(resnet18_shared):
    return copy.deepcopy(resnet18_shared)


@pytest.fixture
def image_batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 64, 64, generator=g)


def model_state(model: nn.Module):
    """Everything explain() must leave untouched."""
    return {
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                     + len(getattr(m, "_backward_pre_hooks", {})) for m in model.modules()),
        "params": [p.detach().clone() for p in model.parameters()],
    }


def assert_maps_close(actual, expected, rel: float = 1e-4):
    """|actual - expected| <= rel * max|expected| everywhere: float-rounding agreement for maps
    computed by two mathematically identical routes on a real network (different summation
    orders or kernels); exact equality is tested on the hand-computed net."""
    import numpy as np
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = float(np.abs(expected).max())
    if scale == 0:  # callers assert separately that enough of their maps are non-zero
        assert not np.abs(actual).max(), "expected an all-zero map"
        return
    worst = float(np.abs(actual - expected).max())
    assert worst <= rel * scale, f"maps differ by {worst:.3g}, more than {rel} of their peak {scale:.3g}"


def _dashboard_runs_as_streamlit_run_does():
    """AppTest resets ``PagesManager.uses_pages_directory`` before every run, so with a ``pages/``
    folder next to dashboard.py each rerun after the first executes only the page file (the
    pre-st.navigation "pages directory" mode), skipping dashboard.py and its shared sidebar.
    ``streamlit run`` sets the flag once per process and st.navigation turns it off for good;
    do the same here so the tests run the app the way users get it."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, main_script_path, *args, **kwargs):
        original(self, main_script_path, *args, **kwargs)
        if str(main_script_path).endswith("dashboard.py"):
            PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init


_dashboard_runs_as_streamlit_run_does()


@pytest.fixture(scope="session")
def weights_server(tmp_path_factory):
    """A real HTTP server on 127.0.0.1 serving hash-prefixed state dicts (tests/weights_server.py)."""
    from tests.weights_server import WeightsServer
    with WeightsServer(tmp_path_factory.mktemp("served")) as s:
        yield s


@pytest.fixture
def download_entry(weights_server, tmp_path, monkeypatch):
    """The test plugin's 'test-download' entry (tests/fixtures/download_plugin.py) with its cache
    file under this test's tmp folder, downloading from the local server through
    STUDIO_WEIGHTS_BASE_URL; the example plugin is loaded too. Yields the cache path."""
    import model_zoo
    from model_zoo import registry
    root = Path(__file__).resolve().parents[1]
    plugin = str(root / "tests" / "fixtures" / "download_plugin.py")
    cache = tmp_path / "cache" / weights_server.good_name
    monkeypatch.setenv("STUDIO_TEST_WEIGHTS_FILE", str(cache))
    monkeypatch.setenv("STUDIO_TEST_WEIGHTS_URL", f"https://download.example.org/models/{weights_server.good_name}")
    monkeypatch.setenv("STUDIO_WEIGHTS_BASE_URL", weights_server.url)
    monkeypatch.setenv("STUDIO_MODELS", f"{plugin},{root / 'examples' / 'cifar_plugin.py'}")
    registry._REGISTRY.pop("test-download", None)  # its paths are this test's
    registry._PLUGINS_LOADED.discard(plugin)
    model_zoo.load_plugins()
    assert model_zoo.plugin_errors() == {}
    yield cache
    registry._REGISTRY.pop("test-download", None)


def open_dashboard(timeout: int = 120, model: str | None = "shapes-resnet"):
    """The dashboard through AppTest, run once, with ``model`` chosen in the sidebar (the app
    opens on efficientnet-lite0 and the photos; the tests of the shapes world's ground truth
    choose a shapes model, as a user does with one click)."""
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard.py"), default_timeout=timeout).run()
    if model is not None and at.selectbox(key="model").value != model:
        at.selectbox(key="model").set_value(model).run()
    return at
