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
    # 0.95 and 0.875 on these 40 scenes (the card's 200: 0.945 and 0.89); without the captioner's
    # concept loss colour words found their object 0.64 of the time (README, "Captioning and VQA")
    assert r["pointing_shape_words"] >= 0.85
    assert r["pointing_colour_words"] >= 0.8 and r["pointing"] >= 0.85


def test_region_captions_concentrate_on_their_object(captioner):
    r = ground.region_captions(captioner, 20, FRESH)
    assert r["regions"] == 40
    for method in ("gradcam", "guided_backprop", "guided_gradcam"):
        assert r[method] > 1.5 * r["uniform_map"], (method, r)


def test_answers_point_at_the_object_asked_about(vqa):
    r = ground.vqa_pointing(vqa, 40, FRESH)
    assert r["questions"] == 160
    # the issue asks 85%: these 160 answers give 0.956, 800 of this seed 0.963, the card's 0.951
    # (README); the two-layer answer classifier of the previous release gave 0.84 here
    assert r["pointing"] >= 0.85
    assert r["pointing_shape_of_colour"] >= 0.85 and r["pointing_colour_of_shape"] >= 0.85
    rho = r["rank_correlation_with_mask"]
    assert rho["gradcam"] > rho["random"] + 0.05 and abs(rho["random"]) < 0.05


def test_cards_carry_the_figures():
    cap, vqa = model_zoo.shapes.card("shapes-captioner"), model_zoo.shapes.card("shapes-vqa")
    words = cap["gradcam"]["word_pointing"]
    assert words["pointing_shape_words"] >= 0.85 and words["pointing_colour_words"] >= 0.85
    assert cap["recipe"]["concept_loss"] > 0  # what the colour words owe their maps to
    # exact match over one- and two-object scenes alike (the first 200 held-out ones are one-object)
    assert cap["caption_exact_match_pair"] >= 0.95 and cap["caption_exact_match_single"] >= 0.95
    assert cap["exact_match_scenes"] == 200 and vqa["accuracy"] >= 0.95
    assert vqa["gradcam"]["vqa"]["pointing"] >= 0.85
    for card in (cap, vqa):
        assert card["retrain"] == f"./studio shapes train --model {card['id']}"
