"""model_zoo.Preprocess does torchvision's resize, centre crop, pil_to_tensor and normalize with
Pillow and PyTorch directly (no torchvision import at the first page): the same to the bit."""
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from model_zoo import Preprocess


def _torchvision(p: Preprocess, image: Image.Image) -> tuple[Image.Image, torch.Tensor]:
    img = TF.resize(image.convert("RGB"), p.resize, interpolation=InterpolationMode(p.interpolation), antialias=True)
    img = TF.center_crop(img, p.crop)
    return img, TF.normalize(TF.pil_to_tensor(img).to(torch.float32) / 255.0, list(p.mean), list(p.std))


@pytest.mark.parametrize("size", [(64, 64), (300, 200), (200, 300), (225, 224), (501, 333), (57, 90), (224, 224)])
@pytest.mark.parametrize("spec", [(256, 224, "bilinear"), (232, 224, "bilinear"), (342, 299, "bicubic"),
                                  (64, 64, "bilinear"), (224, 224, "nearest"), (200, 224, "bilinear")])
def test_the_same_as_torchvision(size, spec):
    rng = np.random.default_rng(sum(size) + spec[0])
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    p = Preprocess(resize=spec[0], crop=spec[1], interpolation=spec[2])
    want_img, want = _torchvision(p, image)
    np.testing.assert_array_equal(np.asarray(p.display(image)), np.asarray(want_img))
    got = p(image)
    assert got.dtype == torch.float32 and got.shape == (3, spec[1], spec[1])
    assert torch.equal(got, want)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        Preprocess(resize=256, crop=224, interpolation="cubic")
    with pytest.raises(ValueError, match="has a zero"):
        Preprocess(resize=256, crop=224, std=(0.2, 0.0, 0.2))


def test_the_imagenet_metadata_file_is_torchvisions():
    """model_zoo/imagenet_weights.json (read instead of importing torchvision to list the models)
    holds what the installed torchvision says; `python -m model_zoo.imagenet` writes it again."""
    import json

    from model_zoo import imagenet
    assert json.loads(imagenet.METADATA.read_text()) == json.loads(json.dumps(imagenet.metadata_from_torchvision()))


def test_listing_the_models_does_not_import_torchvision():
    import subprocess
    import sys
    code = ("import sys, model_zoo, ui.selection; model_zoo.load('shapes-resnet');"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torchvision'))")
    from pathlib import Path
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]", out.stdout
