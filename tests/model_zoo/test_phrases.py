"""Phrases about described scenes (issue 29): the grammar, the exact truth of a phrase, packing
several phrases into one input, and clear messages for what cannot be read."""
from __future__ import annotations

import numpy as np
import pytest

from model_zoo.shapes import language as L
from model_zoo.shapes import phrases as P


def _pair():
    for i in range(200):
        s = L.make_described(7, i, "pair")
        if s.relation == "left of":
            return s
    raise AssertionError("no side-by-side pair in 200 scenes")


def test_the_grammar_reads_one_or_two_nouns():
    assert P.parse("a small red circle") == P.Phrase(P.Noun("small", "red", "circle"))
    assert P.parse("Red object.") == P.Phrase(P.Noun(None, "red", None))
    assert P.parse("large") == P.Phrase(P.Noun("large", None, None))
    assert P.parse("the square left of a blue triangle") == P.Phrase(
        P.Noun(None, None, "square"), "left of", P.Noun(None, "blue", "triangle"))
    for bad, part in (("circle red", "'circle' is out of place"), ("left of the square", "names no object"),
                      ("red blue circle", "'blue' is out of place")):
        with pytest.raises(P.PhraseError, match=part):
            P.parse(bad)


def test_unknown_words_are_named_and_long_phrases_refused():
    with pytest.raises(L.UnknownWords, match=r"'dog'.*the vocabulary is: a, the"):
        P.encode_phrases(["a red dog"])
    with pytest.raises(L.TooLong, match="at most 16 words"):
        P.encode_phrases([" ".join(["red"] * 17)])
    with pytest.raises(L.TooLong, match="at most 64"):
        P.encode_phrases(["red"] * 65)


def test_packed_phrases_split_back():
    packed = P.encode_phrases(["red circle", "the square above a triangle"])
    assert packed.count(P.PHRASE_WORDS.index(P.SEP)) == 1
    back = P.split_packed((0, 0) + packed)  # padding is dropped
    assert [" ".join(P.PHRASE_WORDS[t] for t in p) for p in back] == ["red circle", "the square above a triangle"]


def test_truth_is_read_off_the_scene():
    s = _pair()
    a, b = s.objects  # a is the left one
    assert P.is_true(s, f"{a.colour} {a.name}") and P.is_true(s, f"{b.size} {b.name}")
    assert not P.is_true(s, f"{b.colour} {a.name}")  # the colours swapped: no such object
    assert P.is_true(s, f"the {a.name} left of the {b.name}")
    assert P.is_true(s, f"the {b.name} right of the {a.name}")
    assert not P.is_true(s, f"the {b.name} left of the {a.name}")
    assert not P.is_true(s, f"the {a.name} above the {b.name}")
    assert P.is_true(s, "object") and not P.is_true(s, _absent(s))
    assert P.named_object(s, f"{b.colour} object") == 1
    assert P.named_object(s, "object") is None  # both


def _absent(s):
    present = {o.name for o in s.objects}
    return next(c for c in P.CLASSES if c not in present)


def test_sampled_phrases_are_true_and_negatives_are_one_word_away():
    rng = np.random.default_rng(0)
    false = 0
    for i in range(300):
        s = L.make_described(3, i, "pair" if i % 3 else "single")
        assert P.is_true(s, P.sample_phrase(s, rng))
        neg = P.negative_phrase(s, rng)
        assert P.parse(P.say(neg)) == neg  # said and read back alike
        false += not P.is_true(s, neg)
    assert false > 200  # mostly false: the loss reads each one's truth anyway


def test_a_scenes_own_phrases_name_its_objects():
    s = _pair()
    own = P.scene_phrases(s)
    assert all(P.is_true(s, p) for p in own)
    assert P.named_object(s, own[0]) == 0 and P.named_object(s, own[2]) == 1
