"""Issue 31's metrics on hand-computable cases (evaluation.quality), and the agreement panel
(evaluation.concordance) on values whose rankings are known."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from evaluation import concordance, metrics, quality


class _Sum(nn.Module):
    """Two logits: the sum of the image's values, and 0."""

    def forward(self, x):
        s = x.sum(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def _x(seed=0, size=8):
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_stability_is_the_relative_change_of_the_map_by_hand():
    x = _x()

    def first_channel(model, x, cls):
        return x[0, 0].numpy().copy()
    base = first_channel(None, x, 0)
    got = quality.stability(first_channel, None, x, 0, base, samples=2, radius=0.1, seed=5)
    g = torch.Generator().manual_seed(5)
    r = 0.1 * float(x.max() - x.min())
    by_hand = np.mean([np.linalg.norm(((torch.rand(x.shape, generator=g, dtype=torch.float64) * 2 - 1) * r)[0, 0]
                                      .numpy()) / np.linalg.norm(base) for _ in range(2)])
    assert got == pytest.approx(by_hand)
    assert quality.stability(lambda m, x, c: base, None, x, 0, base) == 0.0  # a map that ignores the image
    assert math.isnan(quality.stability(first_channel, None, x, 0, np.zeros((8, 8))))


def test_random_logit_draws_another_class_and_scores_ssim():
    x = _x()
    maps = {0: np.eye(8), 1: np.fliplr(np.eye(8)) * 3}
    got = quality.random_logit(lambda m, x, c: maps[c], None, x, 0, maps[0], classes=2)
    assert got == pytest.approx(metrics.ssim(maps[0], maps[1] / 3, data_range=1.0))
    assert quality.random_logit(lambda m, x, c: maps[0], None, x, 0, maps[0], classes=5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two classes"):
        quality.random_logit(lambda m, x, c: maps[0], None, x, 0, maps[0], classes=1)


def test_efficient_mprt_is_the_entropy_ratio_by_hand():
    two = np.array([[0.0, 1.0], [0.0, 1.0]])  # two bins, half each: ln 2
    four = np.array([[0.0, 0.3], [0.6, 1.0]])  # four bins, a quarter each: ln 4
    assert quality.entropy(two) == pytest.approx(math.log(2))
    assert quality.efficient_mprt(lambda m, x, c: four, None, None, None, 0, two) == pytest.approx(2.0)
    assert math.isnan(quality.efficient_mprt(lambda m, x, c: four, None, None, None, 0, np.ones((2, 2))))


def test_smooth_mprt_is_one_when_the_weights_do_not_matter_and_minus_one_when_reversed():
    x = _x()
    model, randomised = nn.Identity(), nn.Identity()
    ramp = np.arange(64, dtype=float).reshape(8, 8)

    def same(m, x, c):
        return ramp
    assert quality.smooth_mprt(same, model, randomised, x, 0) == pytest.approx(1.0)

    def reversed_by_randomisation(m, x, c):
        return ramp if m is model else -ramp[::-1, ::-1] - 100  # |.| ranks reversed
    assert quality.smooth_mprt(reversed_by_randomisation, model, randomised, x, 0) == pytest.approx(-1.0)


def test_fully_randomised_changes_every_parameter_and_leaves_the_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2)).eval()
    before = [p.detach().clone() for p in model.parameters()]
    rand = quality.fully_randomised(model, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before, rand.parameters()) if a.dim() > 1)


def test_adcc_by_hand():
    x = _x(1)
    mask = np.zeros((8, 8))
    mask[:, :4] = 1.0  # complexity 0.5

    def explain(model, x, cls):
        return mask
    got = quality.adcc(explain, _Sum(), x, 0, mask)
    y = torch.softmax(torch.tensor([float(x.sum()), 0.0]), 0)[0].item()
    o = torch.softmax(torch.tensor([float(x[..., :4].sum()), 0.0]), 0)[0].item()
    drop = max(0.0, y - o) / y
    assert got["complexity"] == pytest.approx(0.5) and got["coherency"] == pytest.approx(1.0)
    assert got["average_drop"] == pytest.approx(drop)
    assert got["adcc"] == pytest.approx(3 / (1 / 1.0 + 1 / 0.5 + 1 / (1 - drop)))
    assert quality.adcc(explain, _Sum(), x, 0, np.zeros((8, 8)))["adcc"] == 0.0


def _scored(values: dict, methods) -> dict:
    n = len(next(iter(next(iter(values.values())).values())))
    return {"methods": list(methods), "metrics": list(values), "images": n, "values": values}


def test_the_panel_ranks_with_intervals_and_names_the_disagreement():
    rng = np.random.default_rng(0)
    methods = ["a", "b", "c"]
    n = 60
    # insertion (higher is better) ranks a > b > c; deletion (lower is better) ranks them the other way
    ins = {m: list(mu + 0.01 * rng.standard_normal(n)) for m, mu in zip(methods, (0.9, 0.6, 0.3))}
    dele = {m: list(mu + 0.01 * rng.standard_normal(n)) for m, mu in zip(methods, (0.9, 0.6, 0.3))}
    p = concordance.panel(_scored({"insertion_auc": ins, "deletion_auc": dele}, methods), boot=300)
    assert [p["rankings"]["insertion_auc"][m]["rank"] for m in methods] == [1, 2, 3]
    assert [p["rankings"]["deletion_auc"][m]["rank"] for m in methods] == [3, 2, 1]
    assert p["rankings"]["insertion_auc"]["a"]["low"] == p["rankings"]["insertion_auc"]["a"]["high"] == 1
    assert p["tau"]["insertion_auc|deletion_auc"]["tau"] == pytest.approx(-1.0)
    assert {c["method"] for c in p["significant_changes"]} == {"a", "c"}  # b is second by both
    assert "disagree" in p["sentence"] and "Insertion AUC: a" in p["sentence"] and "Deletion AUC: c" in p["sentence"]
    assert concordance.tau_matrix(p)[0, 1] == pytest.approx(-1.0)
    text = concordance.markdown(p)
    import re
    assert re.search(r"\| a \| 1 \(1-1\); 0\.9\d\d \| 3 \(3-3\); 0\.(89|90)\d \|", text), text


def test_the_panel_says_when_the_metrics_agree_and_leaves_out_what_is_not_finite():
    rng = np.random.default_rng(1)
    methods = ["a", "b", "c", "d"]
    n = 40
    road = {m: list(mu + 0.3 * rng.standard_normal(n)) for m, mu in zip(methods, (0.4, 0.3, 0.2, 0.1))}
    adcc = {m: list(mu + 0.3 * rng.standard_normal(n)) for m, mu in zip(methods, (0.8, 0.7, 0.6, 0.5))}
    adcc["c"][3] = float("nan")
    p = concordance.panel(_scored({"road": road, "adcc": adcc}, methods), boot=300)
    assert p["left_out"] == {"road": 0, "adcc": 1}
    if p["tau"]["road|adcc"]["tau"] == 1.0:
        assert p["sentence"].startswith("Every metric ranks a first.")
    # with this much noise the ranks are uncertain: wide intervals, nothing named significant
    assert p["rankings"]["road"]["b"]["high"] - p["rankings"]["road"]["b"]["low"] >= 1
    assert p["significant_changes"] == []
    with pytest.raises(ValueError, match="two methods"):
        concordance.panel(_scored({"road": {"a": [1.0, 2.0]}}, ["a"]))


def test_a_tie_of_many_at_the_top_is_counted_in_the_sentence():
    methods = ["a", "b", "c", "d", "e"]
    hits = {m: [1.0, 1.0, 1.0] for m in methods[:4]} | {"e": [0.0, 0.0, 1.0]}
    road = {m: [5.0 - i, 5.0 - i, 5.0 - i] for i, m in enumerate(methods)}
    p = concordance.panel(_scored({"pointing": hits, "road": road}, methods), boot=50)
    assert p["best"]["pointing"] == ["a", "b", "c", "d"]
    assert "(Pointing game: 4 methods tie; ROAD, (LeRF - MoRF) / 2: a)" in p["sentence"]
    p = concordance.panel(_scored({"pointing": {m: hits[m] for m in "abe"}, "road": road}, ["a", "b", "e"]), boot=50)
    assert "Every metric ranks" not in p["sentence"] and "Pointing game: a and b;" in p["sentence"]
    # a metric that ties every method ranks none first: it is said apart, and the others decide
    p = concordance.panel(_scored({"pointing": {m: hits[m] for m in "abcd"}, "road": road}, list("abcd")), boot=50)
    assert p["sentence"].startswith("Pointing game ties every method. Every other metric ranks a first.")
    assert "Kendall" not in p["sentence"]  # the one pair left has a metric that ranks nothing: no tau to speak of
    assert np.isnan(p["tau"]["pointing|road"]["tau"]) and np.isnan(concordance.tau_matrix(p)[0, 1])
    assert "| pointing | 1.00 | n/a |" in concordance.markdown(p)
    assert '"tau": null' in concordance.to_json(p)


def test_scoring_shapes_scenes_keeps_every_images_value_and_its_cost():
    import model_zoo
    from evaluation import data
    loaded = model_zoo.load("shapes-resnet")
    done = []
    scored = concordance.score_images(loaded, data.shapes(3, 20000), ["gradcam", "finercam", "centre"],
                                      progress=done.append)
    assert done == [1, 2, 3] and scored["images"] == 3
    for name in concordance.METRICS:
        for m in ("gradcam", "finercam", "centre"):
            assert len(scored["values"][name][m]) == 3, (name, m)
            assert scored["metric_seconds_per_image"][name][m] >= 0
    assert scored["values"]["stability"]["centre"] == [0.0, 0.0, 0.0]  # the centre map ignores the image
    assert scored["values"]["random_logit"]["centre"] == pytest.approx([1.0] * 3)  # and the class
    assert all(v in (0.0, 1.0) for v in scored["values"]["pointing"]["gradcam"])
    p = concordance.panel(scored, boot=50)
    assert set(p["rankings"]) <= set(concordance.METRICS) and p["sentence"]
    with pytest.raises(ValueError, match="unknown metric"):
        concordance.score_images(loaded, data.shapes(1), ["gradcam"], ["faithfulness"])
    with pytest.raises(ValueError, match="unknown method"):
        concordance.score_images(loaded, data.shapes(1), ["gradcamm"])


def test_cli_agreement_writes_the_panel_as_json_and_markdown(tmp_path, capsys):
    import json

    import model_zoo
    from cli.evaluate import main
    from evaluation import data
    out = tmp_path / "a" / "agreement.json"
    args = ["agreement", "--methods", "gradcam,rise,centre", "--metrics", "pointing,deletion_auc,stability",
            "--option", "masks=40", "--n", "3", "--tolerance", "4", "--boot", "50", "--out", str(out)]
    assert main(args) == 0
    said = capsys.readouterr().out
    written = json.loads(out.read_text())
    # the panel of the same scenes, metrics and RISE's 40 masks, computed by the library
    scored = concordance.score_images(model_zoo.load("shapes-resnet"), data.shapes(3, 20000),
                                      ["gradcam", "rise", "centre"], ["pointing", "deletion_auc", "stability"],
                                      tolerance=4, options={"rise": {"masks": 40}})
    expected = concordance.panel(scored, boot=50)
    assert written["scored"]["options"] == {"rise": {"masks": 40}}
    assert written["scored"]["values"] == json.loads(json.dumps(concordance._finite(scored["values"])))
    assert written["panel"]["rankings"] == json.loads(concordance.to_json(expected))["panel"]["rankings"]
    assert expected["sentence"] in said and "rise with masks=40" in said
    assert out.with_suffix(".md").read_text().startswith(expected["sentence"])
    assert main(["agreement", "--methods", "gradcam,centre", "--option", "masks=40", "--n", "1",
                 "--out", str(out)]) == 1
    assert "no chosen method has the option(s) masks" in capsys.readouterr().err
    assert main(["agreement", "--metrics", "faithfulness", "--n", "1", "--out", str(out)]) == 1
    assert "unknown metric(s) faithfulness" in capsys.readouterr().err
