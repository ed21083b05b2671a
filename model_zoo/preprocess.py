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

    def view_box(self, box, size: tuple[int, int]):
        """A box (x0, y0, x1, y1, half-open) on an image of ``size`` = (width, height) in the
        coordinates of the crop the network sees (scaled like ``resize``, shifted like the centre
        crop, clipped); None when the crop cuts it away."""
        w, h = size
        short, long_ = (w, h) if w <= h else (h, w)
        new_long = int(self.resize * long_ / short)
        nw, nh = (self.resize, new_long) if w <= h else (new_long, self.resize)
        sx, sy = nw / w, nh / h
        left, top = int(round((nw - self.crop) / 2.0)), int(round((nh - self.crop) / 2.0))
        x0, y0 = box[0] * sx - left, box[1] * sy - top
        x1, y1 = box[2] * sx - left, box[3] * sy - top
        x0, y0 = max(0, int(x0)), max(0, int(y0))
        x1, y1 = min(self.crop, int(round(x1))), min(self.crop, int(round(y1)))
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def batch(self, images) -> torch.Tensor:
        """A list of PIL images -> N x 3 x crop x crop."""
        return torch.stack([self(im) for im in images])
