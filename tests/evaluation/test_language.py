"""The paper's captioning and VQA claims on the shipped shapes models, on a fresh seed (never
used for training or for the cards), with fewer scenes than the cards."""
import pytest

import model_zoo
from evaluation import language as ground

pytestmark = pytest.mark.slow

FRESH = 777_000  # neither a training seed, nor a card's held-out or ground-truth seed


@pytest.fixture(scope="module")
def captioner():
    return model_zoo.load("shapes-captioner")


@pytest.fixture(scope="module")
def vqa():
    return model_zoo.load("shapes-vqa")


def test_word_maps_point_at_the_object_the_word_names(captioner):
    r = ground.word_pointing(captioner, 40, FRESH)
    assert r["words"] == 160  # two shape and two colour words per two-object scene
    assert r["pointing_shape_words"] >= 0.85
    # colour words fall short of the 85% (about 0.69 here; README, "Captioning and VQA"):
    # pinned where they are, so that a regression shows, and a fix can raise the bar
    assert r["pointing_colour_words"] >= 0.6 and r["pointing"] >= 0.75


def test_region_captions_concentrate_on_their_object(captioner):
    r = ground.region_captions(captioner, 20, FRESH)
    assert r["regions"] == 40
    for method in ("gradcam", "guided_backprop", "guided_gradcam"):
        assert r[method] > 1.5 * r["uniform_map"], (method, r)


def test_answers_point_at_the_object_asked_about(vqa):
    r = ground.vqa_pointing(vqa, 40, FRESH)
    assert r["questions"] == 160
    # the issue asks 85%; the card's 800 questions give 0.84 (README): pinned just below
    assert r["pointing"] >= 0.8
    rho = r["rank_correlation_with_mask"]
    assert rho["gradcam"] > rho["random"] + 0.05 and abs(rho["random"]) < 0.05


def test_cards_carry_the_figures():
    cap, vqa = model_zoo.shapes.card("shapes-captioner"), model_zoo.shapes.card("shapes-vqa")
    assert cap["gradcam"]["word_pointing"]["pointing_shape_words"] >= 0.85
    assert cap["caption_exact_match_greedy"] >= 0.95 and vqa["accuracy"] >= 0.95
    assert vqa["gradcam"]["vqa"]["pointing"] >= 0.8
    for card in (cap, vqa):
        assert card["retrain"] == f"./studio shapes train --model {card['id']}"
