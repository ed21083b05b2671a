"""Rendering: normalisation policies, colour maps, overlays, pixel images — by the numbers."""
import numpy as np
import pytest
from PIL import Image

from explainers import render


def test_normalize_policies():
    a = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32)
    b = np.array([[0.0, 8.0]], np.float32)
    per = render.normalize([a, b], "per_map")
    np.testing.assert_array_equal(per[0], [[0, 0.25], [0.5, 1]])
    np.testing.assert_array_equal(per[1], [[0, 1]])
    joint = render.normalize([a, b], "joint")
    np.testing.assert_array_equal(joint[0], [[0, 0.125], [0.25, 0.5]])
    np.testing.assert_array_equal(joint[1], [[0, 1]])
    raw = render.normalize([a], "none")
    np.testing.assert_array_equal(raw[0], a)
    zero = render.normalize([np.zeros((2, 2))], "per_map")[0]
    assert not zero.any() and not np.isnan(zero).any()
    with pytest.raises(ValueError, match="unknown normalisation 'max'"):
        render.normalize([a], "max")


def test_colormap_endpoints():
    v = np.array([[0.0, 0.5, 1.0]])
    jet = render.colorize(v, "jet")
    assert jet.shape == (1, 3, 3) and jet.dtype == np.uint8
    assert tuple(jet[0, 0]) == (0, 0, 128) and tuple(jet[0, 2]) == (128, 0, 0)
    assert tuple(render.colorize(v, "gray")[0, 1]) == (128, 128, 128)
    assert tuple(render.colorize(v, "viridis")[0, 0]) == (0x44, 0x01, 0x54)
    assert tuple(render.colorize(v, "viridis")[0, 2]) == (0xfd, 0xe7, 0x25)
    # out-of-range and NaN values are clipped, not wrapped
    assert tuple(render.colorize(np.array([[2.0, np.nan]]), "gray")[0, 0]) == (255, 255, 255)
    with pytest.raises(ValueError, match="unknown colour map 'rainbow'"):
        render.colorize(v, "rainbow")


def test_overlay_blends():
    image = Image.new("RGB", (4, 2), (100, 100, 100))
    heat = np.ones((2, 4), np.float32)  # gray colour map -> white
    np.testing.assert_array_equal(np.asarray(render.overlay(image, heat, 0.0, "gray")), 100)
    np.testing.assert_array_equal(np.asarray(render.overlay(image, heat, 1.0, "gray")), 255)
    np.testing.assert_array_equal(np.asarray(render.overlay(image, heat, 0.5, "gray")), 178)  # 177.5 rounds up
    with pytest.raises(ValueError, match="alpha"):
        render.overlay(image, heat, 1.5)


def test_overlay_resizes_map_to_image():
    image = Image.new("RGB", (8, 8), (0, 0, 0))
    small = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    out = np.asarray(render.overlay(image, small, 1.0, "gray"))
    assert out.shape == (8, 8, 3)
    assert out[:, 0].max() < out[:, -1].min()  # left dark, right bright


def test_pixel_image():
    zero = render.pixel_image(np.zeros((3, 2, 2)))
    np.testing.assert_array_equal(np.asarray(zero), 128)
    attr = np.zeros((3, 1, 2), np.float32)
    attr[:, 0, 0], attr[:, 0, 1] = 1.0, -1.0
    img = np.asarray(render.pixel_image(attr, scale=1.0))
    assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[0, 1]) == (0, 0, 0)
    with pytest.raises(ValueError, match="3 x H x W"):
        render.pixel_image(np.zeros((2, 2)))


def test_faint_maps_are_named():
    from explainers import render
    strong = np.ones((4, 4))
    notes = render.faint_maps({"A": strong, "B": strong * 0.004, "C": np.zeros((4, 4)), "D": strong * 0.5,
                               "E": np.full((4, 4), 1e-9)})
    assert set(notes) == {"B", "C", "E"}
    assert notes["B"].startswith("peaks at 0.004, 0.4% of the largest map beside it")
    assert notes["C"] == "is all zero: there is nothing to show"
    assert notes["E"].startswith("peaks at 1.0e-09")
    assert render.faint_maps({"alone": strong * 1e-3}) == {}
