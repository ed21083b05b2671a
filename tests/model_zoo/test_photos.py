"""The real photos: licences shown, hand-drawn boxes inside the photos, and the composite's
boxes moved with its pixels."""
import json

import numpy as np

from model_zoo import photos
from model_zoo.imagenet import CATEGORIES


def test_every_photo_has_its_credit_licence_and_boxes():
    got = photos.photos()
    assert got[0].name == photos.COMPOSITE and len(got) == 5
    for p in got:
        assert p.image.dtype == np.uint8 and p.image.ndim == 3 and p.image.shape[2] == 3
        assert p.credit and p.licence and p.objects
        h, w = p.image.shape[:2]
        for o in p.objects:
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (p.name, o)
            assert all(0 <= c < 1000 for c in o.classes)


def test_the_classes_name_the_objects():
    names = {o.name: [CATEGORIES[c] for c in o.classes] for p in photos.photos() for o in p.objects}
    assert "tiger cat" in names["cat"] and "Egyptian cat" in names["cat"]
    assert names["cup"][0] == "espresso"
    assert "missile" in names["rocket"]


def test_the_composite_boxes_follow_its_pixels():
    """The cat tile is chelsea's crop scaled to the tile: its pixels equal a resize of the crop,
    and the box lies on that tile."""
    cfg = json.loads(photos.BOXES.read_text())["composite"]
    comp = photos.photo(photos.COMPOSITE)
    tile, top = cfg["tile"], (cfg["canvas"] - cfg["tile"]) // 2
    cat, cup = comp.objects
    assert cat.name == "cat" and cup.name == "cup"
    assert cat.box[2] <= tile <= cup.box[0]  # each box on its own tile
    assert top <= cat.box[1] and cat.box[3] <= top + tile
    # the cup's box: coffee (170, 15, 425, 300) cropped at (130, 10), scaled 224 / 340
    s = tile / 340
    assert cup.box == (tile + int(np.floor(40 * s)), top + int(np.floor(5 * s)),
                       tile + int(np.ceil(295 * s)), top + int(np.ceil(290 * s)))
    assert (comp.image[:top] == 127).all() and (comp.image[top + tile:] == 127).all()
