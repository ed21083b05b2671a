"""Opening images: every kind of bad or unusual file works or gets a clear message."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from explainers import images
from explainers.images import ImageError, open_image


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height, with a tiny IDAT: a decompression bomb's
    shape without its payload."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_rgb_roundtrip():
    arr = np.random.default_rng(0).integers(0, 255, (12, 9, 3), dtype=np.uint8)
    out = open_image(_png(Image.fromarray(arr)))
    assert out.mode == "RGB" and np.array_equal(np.asarray(out), arr)


def test_not_an_image():
    with pytest.raises(ImageError, match="upload.txt: not an image file"):
        open_image(b"hello, this is text", name="upload.txt")


def test_empty_file():
    with pytest.raises(ImageError, match="empty"):
        open_image(b"")


def test_truncated_png():
    data = _png(Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(ImageError, match="damaged or truncated"):
        open_image(data[: len(data) // 2])


def test_decompression_bomb_refused_before_decoding():
    with pytest.raises(ImageError, match=r"bomb.png: 400 MP is above the 40 MP limit"):
        open_image(_png_header_only(20000, 20000), name="bomb.png")
    # below Pillow's own limit, our check on the declared size refuses it
    with pytest.raises(ImageError, match=r"9000 x 9000 pixels \(81 MP\) is above the 40 MP limit"):
        open_image(_png_header_only(9000, 9000), name="big.png")


def test_byte_size_limit(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(b"\0" * 2048)
    with pytest.raises(ImageError, match="big.png: file is .* the limit is"):
        open_image(path, max_bytes=1024)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "nope.png")


def test_grayscale_to_rgb():
    out = open_image(_png(Image.new("L", (5, 4), 77)))
    assert out.mode == "RGB" and out.size == (5, 4) and out.getpixel((0, 0)) == (77, 77, 77)


def test_rgba_composited_on_white():
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    im.putpixel((0, 0), (255, 0, 0, 255))
    out = open_image(_png(im))
    assert out.getpixel((0, 0)) == (255, 0, 0) and out.getpixel((1, 1)) == (255, 255, 255)


def test_cmyk():
    im = Image.new("CMYK", (4, 4), (0, 255, 255, 0))
    buf = io.BytesIO()
    im.save(buf, format="TIFF")
    out = open_image(buf.getvalue())
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 0, 0)


def test_sixteen_bit():
    arr = np.array([[0, 32896, 65535]], dtype=np.uint16)
    out = open_image(_png(Image.fromarray(arr)))
    assert out.mode == "RGB"
    assert [out.getpixel((i, 0))[0] for i in range(3)] == [0, 128, 255]


def test_tiny_image():
    out = open_image(_png(Image.new("RGB", (8, 8), (1, 2, 3))))
    assert out.size == (8, 8)


def test_palette_image():
    im = Image.new("P", (3, 3), 0)
    im.putpalette([10, 20, 30] + [0] * 765)
    assert open_image(_png(im)).getpixel((1, 1)) == (10, 20, 30)


def test_exif_orientation_applied():
    im = Image.new("RGB", (40, 20), (0, 200, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif.tobytes())
    assert open_image(buf.getvalue()).size == (20, 40)


def _jpeg(w, h, quality=60):
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 255 // (w + h))], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.mark.slow
def test_48_megapixel_phone_photo_is_decoded_reduced():
    data = _jpeg(8000, 6000)
    im = images.open_image(data, name="phone.jpg")
    assert im.info["reduced_from"] == (8000, 6000)
    assert im.size == (4000, 3000)  # DCT scaling by 1/2: never 48 MP in memory
    assert im.width * im.height <= images.MAX_PIXELS
    # the reduced picture is the photo: its corner colours follow the gradient it was made with
    a = np.asarray(im, np.float64)
    assert abs(a[-1, -1, 0] - 255) < 12 and abs(a[0, 0, 0]) < 12 and abs(a[-1, 0, 1] - 255) < 12


def test_png_above_the_limit_is_still_refused():
    buf = io.BytesIO()
    Image.new("L", (8000, 6000)).save(buf, format="PNG")
    with pytest.raises(images.ImageError, match=r"big.png: 8000 x 6000 pixels \(48 MP\) is above the 40 MP limit"):
        images.open_image(buf.getvalue(), name="big.png")


@pytest.mark.parametrize("size", [(60000, 1), (1, 60000), (2100, 100)])
def test_strip_is_refused_by_its_aspect_ratio(size):
    buf = io.BytesIO()
    Image.new("L", size).save(buf, format="PNG")
    assert len(buf.getvalue()) < 2000
    ratio = max(size) / min(size)
    with pytest.raises(images.ImageError, match=rf"strip.png: {size[0]} x {size[1]} pixels is a strip "
                                                rf"\(aspect ratio {ratio:.0f}:1\); images up to 20:1"):
        images.open_image(buf.getvalue(), name="strip.png")


def test_preprocess_bounds_the_resized_pixels():
    import model_zoo  # noqa: E402  (the test reaches across packages; the library does not
    pre = model_zoo.get_spec("resnet18").preprocess
    with pytest.raises(ValueError, match=r"a 60000 x 1 image resized to 256 px .* would be 15360000 x 256"):
        pre.display(Image.new("RGB", (60000, 1)))
    assert pre.display(Image.new("RGB", (2000, 100))).size == (224, 224)  # 20:1 is fine
