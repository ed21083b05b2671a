"""The shipped shapes models, on freshly generated held-out scenes (seeds never used in training
or for the cards): accuracy as on their cards, Grad-CAM on the object, the weak model weaker,
the biased model looking at the cue."""
import math

import pytest
import torch

import model_zoo
from model_zoo.shapes import card
from evaluation.groundtruth import cue_energy, pair_discrimination, pointing
from model_zoo.shapes.recipes import RECIPES, accuracy
from model_zoo.weights import sha256_of

FRESH_SEED = 777  # not a training seed (0), nor a card's (10000, 20000)
N = 400


@pytest.fixture(scope="module")
def models():
    return {mid: model_zoo.load(mid) for mid in RECIPES}


@pytest.fixture(scope="module")
def figures(models):
    out = {}
    for mid, lm in models.items():
        out[mid] = {
            "pointing": pointing(lm.model, lm.default_layer, N, FRESH_SEED),
            "pair": pair_discrimination(lm.model, lm.default_layer, N // 2, FRESH_SEED),
        }
    return out


def test_every_recipe_is_shipped_and_registered():
    from model_zoo.shapes.multimodal import MULTI_RECIPES
    from model_zoo.shapes.clip import CLIP_RECIPE
    from model_zoo.shapes.recipes import AGENT_RECIPES, DENSE_RECIPES
    assert set(model_zoo.list_models("shapes")) == (set(RECIPES) | set(MULTI_RECIPES) | set(AGENT_RECIPES)
                                                    | set(DENSE_RECIPES) | {CLIP_RECIPE.id})
    # the captioner, the VQA model, the agents, the detector and the segmenter: weights as on their cards
    for model_id, task in [*((m, r.task) for m, r in MULTI_RECIPES.items()), *((m, "agent") for m in AGENT_RECIPES),
                           *((m, r.task) for m, r in DENSE_RECIPES.items()), (CLIP_RECIPE.id, "text")]:
        c = card(model_id)
        path = model_zoo.get_spec(model_id).weights_file()
        assert path.stat().st_size < 3_000_000 and sha256_of(path) == c["sha256"]
        assert model_zoo.get_spec(model_id).task == task and c["task"] == task
        assert not model_zoo.load(model_id).model.training
    assert {"shapes-resnet", "shapes-fc", "shapes-weak", "shapes-biased"} <= set(RECIPES)
    assert model_zoo.list_models()[0].startswith("shapes-")  # the offline default comes first


@pytest.mark.parametrize("model_id", list(RECIPES))
def test_weights_match_card_and_load_safely(model_id, models):
    c = card(model_id)
    path = model_zoo.get_spec(model_id).weights_file()
    assert path.stat().st_size < 2_000_000
    assert sha256_of(path) == c["sha256"] == models[model_id].sha256
    torch.load(path, weights_only=True)  # a plain state dict: loads without unpickling code
    assert not models[model_id].model.training


@pytest.mark.parametrize("model_id", list(RECIPES))
def test_accuracy_as_on_the_card(model_id, models):
    got = accuracy(models[model_id].model, N, FRESH_SEED, "none")
    assert abs(got - card(model_id)["heldout"]["accuracy"]) <= 0.04, got


def test_only_the_biased_model_depends_on_the_cue(models):
    drops = {}
    for mid, lm in models.items():
        with_cue = accuracy(lm.model, N, FRESH_SEED, "match")
        drops[mid] = (with_cue - accuracy(lm.model, N, FRESH_SEED, "none"),
                      with_cue - accuracy(lm.model, N, FRESH_SEED, "flip"))
    removed, flipped = drops["shapes-biased"]
    assert removed >= 0.10 and flipped >= 0.20 and flipped >= removed, drops
    for mid in ("shapes-resnet", "shapes-fc", "shapes-weak"):
        assert abs(drops[mid][0]) <= 0.03 and abs(drops[mid][1]) <= 0.03, (mid, drops[mid])


def test_gradcam_points_at_the_object_on_the_strong_model(figures):
    """The strong model of the trust pair (global average pooling, as ResNets)."""
    assert figures["shapes-resnet"]["pointing"]["pointing"] >= 0.90, figures["shapes-resnet"]
    assert figures["shapes-resnet"]["pair"]["own_object"] >= 0.85, figures["shapes-resnet"]


def test_the_default_model_names_both_objects_of_a_pair(figures, models):
    """shapes-resnet called 'triangle + ellipse' a diamond (59%) and 'semicircle + triangle' a
    diamond (41%), two of the four sample pairs the class-discrimination demo and study use.
    Trained on a mix of single and two-object scenes, both classes are its top two on held-out
    pairs in >= 90% of scenes, and on every sample pair of the gallery."""
    assert figures["shapes-resnet"]["pair"]["both_classes_in_top2"] >= 0.90, figures["shapes-resnet"]
    from model_zoo.shapes import gallery
    from model_zoo.shapes.recipes import scenes_to_tensor
    pairs = [(name, s) for name, s in gallery() if s.kind == "pair"]
    assert len(pairs) == 4
    with torch.no_grad():
        top2 = models["shapes-resnet"].model(scenes_to_tensor([s for _, s in pairs])).topk(2, dim=1).indices
    for (name, s), top in zip(pairs, top2.tolist()):
        assert set(top) == {o.label for o in s.objects}, name


@pytest.mark.parametrize("model_id", list(RECIPES))
def test_gradcam_figures_as_on_the_card(model_id, figures):
    """Every card's Grad-CAM figures reproduce on fresh scenes (within sampling error). For the
    fully connected head they are markedly lower than for global pooling: alpha_k averages
    gradients that differ between the head's spatial cells."""
    g = card(model_id)["gradcam"]
    assert abs(figures[model_id]["pointing"]["pointing"] - g["pointing_single"]["pointing"]) <= 0.08
    assert abs(figures[model_id]["pair"]["own_object"] - g["pair_own_object"]["own_object"]) <= 0.08
    assert abs(figures[model_id]["pair"]["both_classes_in_top2"] - g["pair_own_object"]["both_classes_in_top2"]) <= 0.08


def _significantly_lower(p_low: float, n_low: int, p_high: float, n_high: int) -> bool:
    """One-sided two-proportion z-test at the 5% level: is p_low measurably below p_high?"""
    pooled = (p_low * n_low + p_high * n_high) / (n_low + n_high)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_low + 1 / n_high))
    return se > 0 and (p_high - p_low) / se >= 1.645


def test_weak_model_scores_lower(figures):
    strong, weak = figures["shapes-resnet"], figures["shapes-weak"]
    assert _significantly_lower(weak["pointing"]["accuracy"], N, strong["pointing"]["accuracy"], N)
    assert _significantly_lower(weak["pointing"]["pointing"], weak["pointing"]["correct"],
                                strong["pointing"]["pointing"], strong["pointing"]["correct"]), figures
    assert _significantly_lower(weak["pair"]["own_object"], N, strong["pair"]["own_object"], N), figures


def test_weak_and_strong_still_agree_on_many_scenes(models):
    from model_zoo.shapes.recipes import scenes_to_tensor
    from model_zoo.shapes.world import make_scene
    x = scenes_to_tensor([make_scene(FRESH_SEED, i) for i in range(N)])
    with torch.no_grad():
        agree = (models["shapes-resnet"].model(x).argmax(1) == models["shapes-weak"].model(x).argmax(1)).float().mean()
    assert agree >= 0.5, float(agree)


def test_biased_maps_put_more_energy_on_the_cue(models):
    biased = cue_energy(models["shapes-biased"].model, "layer3", N // 2, FRESH_SEED)["cue_mass"]
    strong = cue_energy(models["shapes-resnet"].model, "layer3", N // 2, FRESH_SEED)["cue_mass"]
    assert biased >= 3 * strong and biased >= 0.05, (biased, strong)


def test_gradcam_equals_cam_on_the_gap_model(models):
    """shapes-resnet ends in global average pooling + fc: Grad-CAM = ReLU(CAM) / Z."""
    import explainers
    from model_zoo.shapes.recipes import scenes_to_tensor
    from model_zoo.shapes.world import make_scene
    from tests.conftest import assert_maps_close
    model = models["shapes-resnet"].model
    x = scenes_to_tensor([make_scene(FRESH_SEED, 0)])
    acts = {}
    h = model.layer3.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o.detach()))
    with torch.no_grad():
        model(x)
    h.remove()
    a = acts["a"][0]
    for c in range(8):
        cam = torch.relu(torch.einsum("k,khw->hw", model.fc.weight[c].detach(), a)) / a[0].numel()
        e = explainers.explain(model, x, layer="layer3", target=c)
        assert_maps_close(e.layer_map, cam.numpy(), rel=1e-4)


@pytest.mark.parametrize("model_id", list(RECIPES))
def test_registry_default_layer_is_the_discovered_one(model_id, models):
    import explainers
    lm = models[model_id]
    assert explainers.default_layer(lm.model, torch.zeros(1, 3, 64, 64)) == lm.default_layer


def test_preprocess_of_a_scene_is_the_training_normalisation(models):
    from model_zoo.shapes.recipes import scenes_to_tensor
    from model_zoo.shapes.world import make_scene
    scene = make_scene(FRESH_SEED, 3)
    lm = models["shapes-resnet"]
    torch.testing.assert_close(lm.preprocess(scene.pil()), scenes_to_tensor([scene])[0])


def test_table_command_prints_every_card(capsys):
    from cli.shapes import main
    assert main(["table"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| `shapes-")]
    assert len(rows) == len(RECIPES)
    biased = next(r for r in rows if "shapes-biased" in r)
    c = card("shapes-biased")["heldout"]
    assert f"{c['accuracy']:.1%} / {c['accuracy_with_matching_cue']:.1%}" in biased
