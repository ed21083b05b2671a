"""The benchmark runs end to end (tiny setting) and reports what it promises. No timing is
asserted here: speed figures live in bench/README.md."""
import json

import pytest

from bench.__main__ import main


def test_bench_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--models", "resnet18", "--repeats", "1", "--size", "64", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    (res,) = report["results"]
    assert res["model"] == "resnet18" and res["forward_ms"] > 0
    ours = {r["task"]: r for r in res["rows"] if r["library"] == "ours"}
    assert set(ours) == {"gradcam_top1", "gradcam_top5", "guided_backprop", "guided_gradcam",
                         "gradcam_pp", "xgradcam", "hirescam", "layercam", "eigencam",
                         "gradcam_class_switch", "cam_method_switch", "dashboard_first_maps",
                         "dashboard_all_four_maps", "dashboard_forward_plus_rendering"}
    variants = {(r["library"], r["task"]) for r in res["rows"]}
    assert {("pytorch-grad-cam", m) for m in ("gradcam_pp", "xgradcam", "hirescam", "layercam", "eigencam")} <= variants
    assert {("torchcam", m) for m in ("gradcam_pp", "xgradcam", "layercam")} <= variants
    fwd = res["forward_ms"]
    for r in res["rows"]:  # each ratio is that row's time over the forward pass of the same run
        assert r["ms"] > 0
        # ms and forward_ms are rounded to 0.1 ms, the ratio to 0.001
        assert abs(r["ratio"] * fwd - r["ms"]) <= 0.05 + 0.05 * r["ratio"] + 0.0005 * fwd + 1e-9, (r, fwd)
    # ours keeps nothing alive after a call (the kept forward of the dashboard rows is measured apart)
    assert all(r["retained_bytes"] is not None and r["retained_bytes"] >= 0 for r in ours.values())
    assert ours["gradcam_top1"]["retained_bytes"] == 0
    peers = {r["library"] for r in res["rows"]}
    assert {"captum", "pytorch-grad-cam", "torchcam", "floor"} <= peers
    printed = capsys.readouterr().out
    assert "| gradcam_top5 |" in printed and "new image in the dashboard: first maps" in printed


def test_evaluation_bench_smoke(capsys):
    from bench.__main__ import main as bench_main
    assert bench_main(["evaluation", "--n", "1"]) == 0
    out = capsys.readouterr().out
    assert "| 1 |" in out and "| 2 |" in out and "peak at 2N / peak at N" in out


def test_heavy_bench_smoke(tmp_path, capsys):
    from bench.__main__ import main as bench_main
    out = tmp_path / "heavy.json"
    assert bench_main(["heavy", "--model", "resnet18", "--size", "32", "--repeats", "1", "--score-layer", "layer4",
                       "--steps", "4", "--samples", "2", "--patch", "8", "--stride", "8", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    got = {(r["method"], r["library"]) for r in report["rows"]}
    assert got == {("scorecam", "ours"), ("scorecam", "pytorch-grad-cam"), ("scorecam", "torchcam"),
                   ("ablationcam", "ours"), ("ablationcam", "pytorch-grad-cam"),
                   ("integrated_gradients", "ours"), ("integrated_gradients", "captum"),
                   ("occlusion", "ours"), ("occlusion", "captum"), ("smoothgrad", "ours"), ("smoothgrad", "captum")}
    assert not report["errors"]
    for r in report["rows"]:
        # ms and forward_ms are rounded to 0.1 ms (the latter's error grows with the ratio), the ratio to 0.01
        assert abs(r["ratio"] * report["forward_ms"] - r["ms"]) <= 0.05 + 0.05 * r["ratio"] + 0.005 * report["forward_ms"]
    assert "| scorecam |" in capsys.readouterr().out


def test_recent_bench_smoke(tmp_path, capsys):
    """Issue 31's bench runs every new method beside its peers and RISE beside its floor; the
    ratios are measured, not asserted."""
    from bench.__main__ import main as bench_main
    out = tmp_path / "recent.json"
    assert bench_main(["recent", "--model", "resnet18", "--size", "64", "--repeats", "1", "--masks", "8",
                       "--batch-size", "4", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    cnn, vit = report["models"]["resnet18"], report["models"]["vit_b_16"]
    assert not cnn["errors"] and not vit["errors"]
    got = {(r["method"], r["library"]) for r in cnn["rows"]}
    assert {("finercam", "ours"), ("finercam", "pytorch-grad-cam"), ("finercam", "torchcam"),
            ("shapleycam", "ours"), ("shapleycam", "pytorch-grad-cam"), ("kpcacam", "ours"),
            ("kpcacam", "pytorch-grad-cam"), ("rise", "ours"), ("rise", "floor: 8 forwards in batches of 4")} <= got
    assert {(r["method"], r["library"]) for r in vit["rows"]} == {
        ("gradcam (ViT)", "ours"), ("legrad", "ours"), ("legrad", "torchcam"), ("rollout", "ours")}
    said = capsys.readouterr().out
    assert "| rise | ours |" in said and "of the floor" in said


@pytest.mark.slow
def test_browser_bench_smoke(tmp_path, capsys):
    """The browser benchmark plays its interactions once each in Chromium and checks the
    download's settings against the widgets; no timing is asserted."""
    import shutil
    if not shutil.which("chromium") and not __import__("os").path.exists("/usr/bin/chromium"):
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    out = tmp_path / "browser.json"
    assert main(["browser", "--repeats", "1", "--cold", "2", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures["shapes"]) == {"class", "class, first visit", "colour map", "opacity", "method", "layer", "gallery scene",
                                      "upload", "model"}
    assert all("median_s" in v for v in figures["shapes"].values()), figures["shapes"]
    assert figures["settings"]["checked"] and figures["cold start to the first map"]["n"] == 2
    assert figures["started_with"] == "-m ui.launch"  # as ./studio dashboard starts the app
    assert "| class |" in capsys.readouterr().out


def test_loc_evaluation_bench_smoke(capsys):
    from bench import evaluation
    row = evaluation.measure_loc("shapes-resnet", "-", 16, 8, 0)
    assert row["images"] == 16 and row["images_per_s"] > 0 and row["limit_images_per_s"] > 0 and row["peak_mib"] > 0


def test_browser_bench_without_chromium_says_what_to_install(tmp_path, monkeypatch, capsys):
    from bench import browser
    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "no-chromium"))
    assert main(["browser", "--heavy-only", "--repeats", "1"]) == 1
    err = capsys.readouterr().err
    assert "no Chromium at" in err and "apt-get install -y chromium" in err and "Traceback" not in err
