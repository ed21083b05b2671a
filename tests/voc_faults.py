"""A VOC folder with six good scenes and one faulty annotation of each kind the field found
(no <bndbox>, no <xmin>, a coordinate that is not a number, an annotation that is a directory,
an empty box, a box outside the image); returns {image file: the reason it is skipped with}."""
from pathlib import Path

from model_zoo.shapes.voc import export_scene
from model_zoo.shapes.world import make_scene


def write_faulty_folder(root: Path) -> dict[str, str]:
    for i in range(12):
        export_scene(make_scene(20000, i, "single", "flip"), root, f"s{i:02d}")
    notes = root / "annotations"

    def edit(stem, old, new, count=1):
        xml = notes / f"{stem}.xml"
        text = xml.read_text()
        assert old in text, (stem, old)
        xml.write_text(text.replace(old, new, count))

    import re
    text = (notes / "s06.xml").read_text()
    (notes / "s06.xml").write_text(re.sub(r"<bndbox>.*?</bndbox>", "", text, count=1, flags=re.S))
    edit("s07", "<xmin>", "<xmin_>")
    edit("s07", "</xmin>", "</xmin_>")
    text = (notes / "s08.xml").read_text()
    (notes / "s08.xml").write_text(re.sub(r"<ymax>\d+</ymax>", "<ymax>ten</ymax>", text, count=1))
    (notes / "s09.xml").unlink()
    (notes / "s09.xml").mkdir()
    text = (notes / "s10.xml").read_text()
    (notes / "s10.xml").write_text(re.sub(r"<xmax>\d+</xmax>", "<xmax>1</xmax>", text, count=1))
    text = (notes / "s11.xml").read_text()  # no <size>, so only the image can tell the box is outside it
    text = re.sub(r"<size>.*?</size>", "", text, count=1, flags=re.S)
    text = re.sub(r"<xmin>\d+</xmin>", "<xmin>300</xmin>", text, count=1)
    (notes / "s11.xml").write_text(re.sub(r"<xmax>\d+</xmax>", "<xmax>340</xmax>", text, count=1))
    box = {i: make_scene(20000, i, "single", "flip").objects[0] for i in range(6, 12)}
    name = {i: o.name for i, o in box.items()}
    (x0, y0, _, y1), (_, v0, _, v1) = box[10].box, box[11].box  # 0-based, half-open; VOC's xmin is x0 + 1
    return {
        "s06.png": f"s06.xml: object 1 ({name[6]}) has no <bndbox>",
        "s07.png": f"s07.xml: object 1 ({name[7]}) has no <xmin>",
        "s08.png": f"s08.xml: object 1 ({name[8]}): <ymax> is not a number ('ten')",
        "s09.png": "s09.xml: cannot be read (Is a directory)",
        "s10.png": f"s10.xml: object 1 ({name[10]}): its box is empty (xmin {x0 + 1}, xmax 1, ymin {y0 + 1}, "
                   f"ymax {y1})",
        "s11.png": f"object 1 ({name[11]}): its box (299, {v0}, 340, {v1}) lies outside the 64x64 image",
    }
