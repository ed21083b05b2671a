"""torchvision's detectors and segmenters in the registry, offline with random weights (as the
classifiers are tested): each builds at its view size, its output is what the detection and
segmentation targets read, Grad-CAM of one detection (or a class region) runs at its default
layer, a checkpoint in torchvision's layout (a segmenter's with its auxiliary head) loads
through the registry's checked path from the cache, and a download that cannot happen says
where it tried. The metadata file matches the installed torchvision."""
import hashlib
import json

import numpy as np
import pytest
import torch

import explainers
import model_zoo
from model_zoo import tv_dense


def test_the_metadata_file_is_torchvisions():
    assert json.loads(tv_dense.METADATA.read_text()) == tv_dense.metadata_from_torchvision()


@pytest.mark.parametrize("arch", list(tv_dense.ARCHITECTURES))
def test_each_model_explains_with_random_weights(arch):
    torch.manual_seed(0)
    loaded = model_zoo.load(arch, "untrained")
    spec = loaded.spec
    size = loaded.preprocess.crop
    x = torch.rand(1, 3, size, size)
    if spec.task == "detection":
        assert spec.categories[0] == "__background__" and len(spec.categories) == 91
        model = loaded.model
        for part in (model, getattr(model, "roi_heads", None)):  # random heads score below torchvision's 0.05
            if part is not None and hasattr(part, "score_thresh"):
                part.score_thresh = 0.0
        with torch.no_grad():
            d = model(x)[0]
        assert set(d) >= {"boxes", "scores", "labels"} and len(d["scores"]) > 0
        k = int(d["scores"].argmax())
        target = explainers.DetectionScore(int(d["labels"][k]), tuple(d["boxes"][k].tolist()))
    else:
        assert spec.categories[0] == "__background__" and len(spec.categories) == 21
        with torch.no_grad():
            out = loaded.model(x)
        assert out.shape == (1, 21, size, size)
        target = explainers.SegmentationRegion(15, out[0].argmax(0).numpy() >= 0)  # person, the whole view
    e = explainers.explain(loaded.model, x, method="gradcam", layer=spec.default_layer, target=target)
    assert e.attribution.shape == (size, size) and np.isfinite(e.attribution).all()
    assert e.layer_map.shape[0] >= size // 32  # a spatial map, not a vector


def test_a_cached_torchvision_checkpoint_loads(tmp_path, monkeypatch):
    import torchvision
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    arch = "lraspp_mobilenet_v3_large"
    spec = model_zoo.get_spec(arch)
    assert not model_zoo.weights_available(arch)
    torch.manual_seed(1)
    net = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=21)
    state = net.state_dict()
    state["aux_classifier.0.weight"] = torch.zeros(1)  # a checkpoint's auxiliary head: dropped
    path = spec.weights_file()
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    loaded = model_zoo.load(arch, download=False)
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), net.eval()(x)["out"], atol=1e-5)


def test_a_download_that_cannot_happen_says_where_it_tried(tmp_path, monkeypatch, weights_server):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("STUDIO_WEIGHTS_BASE_URL", weights_server.url)  # the file is not there: a 404
    with pytest.raises(model_zoo.WeightsUnavailable, match="fcos_resnet50_fpn_coco-99b0c9b7.pth"):
        model_zoo.fetch_weights("fcos_resnet50_fpn")
    assert not model_zoo.weights_available("fcos_resnet50_fpn")
