"""Image preprocessing as data: resize the shorter side, centre-crop, scale to [0, 1], normalise.
The same record gives the display image (the crop the network sees) for overlays.

The steps are torchvision's (``transforms.functional`` resize, center_crop, pil_to_tensor,
normalize) done with Pillow and PyTorch directly, which is what torchvision itself does on a PIL
image (Pillow's resampling, the same size and offset arithmetic): importing torchvision, which
pulls in ``torch._dynamo``, took 1.1 s of the dashboard's first page (bench/README.md). The
results are the same to the bit (``tests/model_zoo/test_preprocess.py`` compares them); a crop
larger than the resized image, which needs padding, is left to torchvision itself."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

__all__ = ["Preprocess"]

# torchvision's InterpolationMode values -> Pillow's filters (its pil_modes_mapping)
_PIL_FILTERS = {"nearest": Image.NEAREST, "nearest-exact": Image.NEAREST, "bilinear": Image.BILINEAR,
                "bicubic": Image.BICUBIC, "box": Image.BOX, "hamming": Image.HAMMING, "lanczos": Image.LANCZOS}


@dataclass(frozen=True)
class Preprocess:
    resize: int
    crop: int
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"

    max_resized_pixels: int = 25_000_000  # the resized image before the crop (a strip would be huge)

    def __post_init__(self):
        if self.interpolation not in _PIL_FILTERS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; choose from {', '.join(_PIL_FILTERS)}")
        if any(v == 0 for v in self.std):
            raise ValueError(f"std {self.std} has a zero: normalising would divide by it")

    def resized_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of an image of ``size`` after the resize of its shorter side (as
        torchvision's ``resize`` with one number computes it)."""
        w, h = size
        short, long_ = (w, h) if w <= h else (h, w)
        new_long = int(self.resize * long_ / short)
        return (self.resize, new_long) if w <= h else (new_long, self.resize)

    def describe(self, size: tuple[int, int]) -> str:
        """How an image of ``size`` becomes the network's input, in words."""
        w, h = size
        rw, rh = self.resized_size(size)
        steps = [f"{w} x {h}"]
        if (rw, rh) != (w, h):
            steps.append(f"resized to {rw} x {rh} (shorter side {self.resize} px)")
        if (rw, rh) != (self.crop, self.crop):
            cut_x, cut_y = rw - self.crop, rh - self.crop
            cut = []
            if cut_x > 0:
                cut.append(f"{cut_x} px of the width")
            if cut_y > 0:
                cut.append(f"{cut_y} px of the height")
            steps.append(f"centre-cropped to {self.crop} x {self.crop}"
                         + (f" (cuts {' and '.join(cut)})" if cut else ""))
        return " -> ".join(steps) if len(steps) > 1 else f"{w} x {h}, used as is"

    def check(self, size: tuple[int, int]) -> None:
        """ValueError when resizing an image of ``size`` would exceed ``max_resized_pixels``."""
        rw, rh = self.resized_size(size)
        if rw * rh > self.max_resized_pixels:
            raise ValueError(
                f"a {size[0]} x {size[1]} image resized to {self.resize} px on its shorter side would be "
                f"{rw} x {rh} ({rw * rh / 1e6:.0f} MP, above {self.max_resized_pixels / 1e6:.0f} MP); "
                "crop it to a less extreme aspect ratio first")

    def display(self, image: Image.Image) -> Image.Image:
        """The RGB crop the network sees (crop x crop pixels). The resized size is checked first
        (:meth:`check`): a 60000 x 1 strip is refused before any pixel is resized."""
        self.check(image.size)
        img = image.convert("RGB")
        size = self.resized_size(img.size)
        if size != img.size:
            img = img.resize(size, _PIL_FILTERS[self.interpolation])
        w, h = img.size
        if self.crop > w or self.crop > h:  # padding first: torchvision's own rule
            import torchvision.transforms.functional as TF
            return TF.center_crop(img, self.crop)
        top, left = int(round((h - self.crop) / 2.0)), int(round((w - self.crop) / 2.0))
        return img.crop((left, top, left + self.crop, top + self.crop))

    def _mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """mean and std as C x 1 x 1 float32 tensors (normalising and denormalising share them)."""
        return (torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1),
                torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1))

    def tensor(self, view) -> torch.Tensor:
        """The network's input (3 x crop x crop, normalised) from ``view``, the crop the network
        sees (:meth:`display`'s result, as a PIL image or an H x W x 3 uint8 array): scaling to
        [0, 1] and normalising, no resize or crop. A view of another size is refused, so that an
        image is never resized and cropped twice."""
        a = np.asarray(view.convert("RGB") if isinstance(view, Image.Image) else view)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"a view is H x W x 3 uint8, got {a.dtype} {a.shape}")
        if a.shape[:2] != (self.crop, self.crop):
            raise ValueError(f"a view is the {self.crop} x {self.crop} crop the network sees, got "
                             f"{a.shape[1]} x {a.shape[0]}: preprocess the image itself (it is resized and "
                             "cropped once)")
        t = torch.from_numpy(np.array(a, dtype=np.uint8)).permute(2, 0, 1)
        t = t.to(torch.float32) / 255.0
        mean, std = self._mean_std()
        return t.sub_(mean).div_(std)

    def prepare(self, image: Image.Image) -> tuple[np.ndarray, torch.Tensor]:
        """(the view, the input): the image resized and cropped once, as the H x W x 3 uint8
        picture drawn under every map, and the network's 3 x crop x crop input made from it."""
        view = np.asarray(self.display(image))
        return view, self.tensor(view)

    def picture(self, x: torch.Tensor) -> np.ndarray:
        """The input denormalised: 3 x H x W (or 1 x 3 x H x W) -> H x W x 3 uint8. For an input
        made by :meth:`tensor` it gives the view back exactly."""
        x = x.detach().to("cpu", torch.float32)
        if x.dim() == 4:
            if x.shape[0] != 1:
                raise ValueError(f"picture() takes one image, got a batch of {x.shape[0]}")
            x = x[0]
        mean, std = self._mean_std()
        return (x * std + mean).mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> normalised 3 x crop x crop float tensor (add a batch axis yourself)."""
        return self.tensor(self.display(image))

    def view_box(self, box, size: tuple[int, int]):
        """A box (x0, y0, x1, y1, half-open) on an image of ``size`` = (width, height) in the
        coordinates of the crop the network sees (scaled like ``resize``, shifted like the centre
        crop, clipped); None when the crop cuts it away."""
        w, h = size
        nw, nh = self.resized_size(size)
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
