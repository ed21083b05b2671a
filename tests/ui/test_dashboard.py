"""The dashboard through Streamlit's AppTest."""
from pathlib import Path

from streamlit.testing.v1 import AppTest

import model_zoo

ROOT = Path(__file__).resolve().parents[2]


def test_model_zoo_page_lists_every_model():
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    at.switch_page("pages/model_zoo.py").run()
    assert not at.exception
    assert at.title[0].value == "Model zoo"
    table = at.dataframe[0].value
    assert list(table["id"]) == model_zoo.list_models()
    row = table[table["id"] == "vgg16"].iloc[0]
    assert row["default layer"] == "features.29" and row["classes"] == 1000
    shapes = table[table["id"] == "shapes-resnet"].iloc[0]
    assert shapes["weights"] == "present" and shapes["classes"] == 8 and shapes["input"] == "64x64"
    expected = ["untrained (declared)" if model_zoo.get_spec(m).untrained else
                "present" if model_zoo.weights_available(m) else "missing" for m in model_zoo.list_models()]
    assert list(table["weights"]) == expected
    # each description in full in the list (the table cut them at its column's width)
    assert "about" not in table.columns
    listed = "\n".join(m.value for m in at.markdown)
    for m in model_zoo.list_models():
        spec = model_zoo.get_spec(m)
        assert f"**{m}**: {spec.description or spec.title}" in listed, m
