"""Image preprocessing as data: resize the shorter side, centre-crop, scale to [0, 1], normalise.
The same record gives the display image (the crop the network sees) for overlays."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

__all__ = ["Preprocess"]


@dataclass(frozen=True)
class Preprocess:
    resize: int
    crop: int
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"

    def display(self, image: Image.Image) -> Image.Image:
        """The RGB crop the network sees (crop x crop pixels)."""
        mode = InterpolationMode(self.interpolation)
        img = TF.resize(image.convert("RGB"), self.resize, interpolation=mode, antialias=True)
        return TF.center_crop(img, self.crop)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> normalised 3 x crop x crop float tensor (add a batch axis yourself)."""
        t = TF.pil_to_tensor(self.display(image)).to(torch.float32) / 255.0
        return TF.normalize(t, list(self.mean), list(self.std))

    def batch(self, images) -> torch.Tensor:
        """A list of PIL images -> N x 3 x crop x crop."""
        return torch.stack([self(im) for im in images])
