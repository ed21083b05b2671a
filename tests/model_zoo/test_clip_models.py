"""The CLIP models for users with weights (issue 29), offline with random weights: the open_clip
path (model, tokens, layer, map shape), the packed phrases, and the weights download and cache
through a real HTTP server on 127.0.0.1 serving a checkpoint in the hub's open_clip layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import explainers
import model_zoo
from explainers import text as T

pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def rn50():
    return model_zoo.load("clip-rn50", "untrained")


def test_the_resnet_clip_explains_a_phrase_at_its_last_spatial_layer(rn50):
    assert rn50.default_layer == "clip.visual.layer4" and rn50.spec.task == "text"
    assert rn50.preprocess.interpolation == "bicubic" and rn50.preprocess.crop == 224
    tokens = rn50.model.tokenize(["a photo of a cat", "a cup of coffee", "a photo of a cat!"])
    x = torch.randn(1, 3, 224, 224)
    cap = explainers.Capture(rn50.model, x, layer=rn50.default_layer, inputs=(tokens,))
    assert cap.output.shape == (1, 3)
    e = cap.explain("gradcam", explainers.TextSimilarity(tokens, 1))
    assert e.layer_map.shape == (7, 7) and e.attribution.shape == (224, 224)
    assert np.isfinite(e.attribution).all() and np.abs(e.weights).max() > 0  # random weights: the ReLU may zero it
    # a phrase's similarity does not depend on the phrases packed with it
    alone = T.similarities(rn50.model, x, ["a cup of coffee"])[0, 0]
    assert float(cap.output[0, 1]) == pytest.approx(float(alone), abs=1e-5)
    assert "legrad" not in explainers.method_names(model=rn50.model)  # its attention pool is no block


@pytest.mark.slow  # building the 150 M-parameter ViT-B/32 takes seconds
def test_the_vit_clip_uses_the_token_layout_and_offers_legrad():
    vit = model_zoo.load("clip-vit-b-32", "untrained")
    assert "legrad" in explainers.method_names(model=vit.model)
    tokens = vit.model.tokenize(["a dog"])
    e = explainers.explain(vit.model, torch.randn(1, 3, 224, 224), layer=vit.default_layer,
                           target=explainers.TextSimilarity(tokens, 0))
    assert e.layer_map.shape == (7, 7)  # 50 tokens: the class token dropped, 7 x 7 patches


def test_packed_tokens_split_back_into_the_phrases(rn50):
    m = rn50.model
    packed = m.tokenize(["a", "two words"])
    ids = m._split(list(packed))
    assert ids.shape == (2, 77) and int(ids[0, 0]) == m.sot and int(ids[1, 3]) == m.eot
    with pytest.raises(ValueError, match="end each phrase with the end token"):
        m._split(list(packed)[:-1])


@pytest.mark.slow
def test_the_weights_download_into_the_cache_and_load(rn50, weights_server, monkeypatch, tmp_path):
    """The hub's layout (open_clip's own keys, no wrapper prefix) served under
    ``<repository>/open_clip_pytorch_model.bin``; the download lands in torch.hub's checkpoints
    folder and the model computes what the served weights compute."""
    served = weights_server.root / "resnet50_clip.openai"
    served.mkdir(exist_ok=True)
    torch.manual_seed(3)
    source = model_zoo.load("clip-rn50", "untrained").model
    torch.save(source.clip.state_dict(), served / "open_clip_pytorch_model.bin")
    monkeypatch.setenv("STUDIO_WEIGHTS_BASE_URL", weights_server.url)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert not model_zoo.weights_available("clip-rn50")
    path = model_zoo.fetch_weights("clip-rn50")
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / "resnet50_clip.openai.bin"
    loaded = model_zoo.load("clip-rn50", download=False)
    x = torch.randn(1, 3, 224, 224)
    phrases = ["a photo of a cat", "a dog"]
    assert T.similarities(loaded.model, x, phrases) == pytest.approx(T.similarities(source.eval(), x, phrases),
                                                                     abs=1e-5)
