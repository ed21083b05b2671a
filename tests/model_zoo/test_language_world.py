"""The language world: captions and questions follow from the scenes' ground truth, and the same
(seed, index) always gives the same scene, caption and questions."""
import numpy as np
import pytest

from model_zoo.shapes import language as L
from model_zoo.shapes import make_scene


def test_scenes_and_their_words_are_deterministic():
    a, b = L.make_described(3, 7, "pair"), L.make_described(3, 7, "pair")
    np.testing.assert_array_equal(a.image, b.image)
    assert a.caption == b.caption and [q.text for q in L.questions(a)] == [q.text for q in L.questions(b)]
    assert not np.array_equal(a.image, L.make_described(3, 8, "pair").image)
    # the classification world is untouched: its own scenes are not these
    assert not np.array_equal(make_scene(3, 7, "pair").image, a.image)


def test_captions_name_what_is_drawn():
    for i in range(30):
        s = L.make_described(11, i, "pair")
        words = L.caption_words(s)
        first, second = s.objects
        assert words[:4] == ["a", first.size, first.colour, first.name]
        assert words[-4:] == ["a", second.size, second.colour, second.name]
        (ax, ay), (bx, by) = first.centre, second.centre
        if s.relation == "left of":
            assert ax < bx and abs(ax - bx) >= abs(ay - by)
        else:
            assert s.relation == "above" and ay < by and abs(ay - by) > abs(ax - bx)
        assert first.name != second.name and first.colour != second.colour
        for o in s.objects:  # the named colour is the colour of the object's pixels
            mean = s.image[o.shape.mask].mean(0)
            assert np.abs(mean - np.array(L.COLOURS[o.colour])).max() < 12
            lo, hi = L.SIZES[o.size]
            assert o.shape.mask.sum() > 0
        owners = L.word_objects(s)
        assert [owners[p] for p, w in enumerate(words) if w in L.CLASSES] == [0, 1]
    assert L.make_described(11, 0, "single").caption.count(" ") == 3


def test_questions_have_the_ground_truth_answers():
    s = L.make_described(11, 2, "pair")
    qs = {q.kind: [] for q in L.questions(s)}
    for q in L.questions(s):
        qs[q.kind].append(q)
        assert q.answer in L.ANSWERS
        L.encode_question(q.text)  # every question is in the vocabulary
    assert set(qs) == set(L.QUESTION_TYPES)
    for q in qs["colour_of_shape"]:
        assert q.answer == s.objects[q.about].colour and s.objects[q.about].name in q.text
    for q in qs["shape_of_colour"]:
        assert q.answer == s.objects[q.about].name and s.objects[q.about].colour in q.text
    assert qs["how_many"][0].answer == "two"
    (there,) = qs["is_there"]
    assert (there.answer == "yes") == any(o.name in there.text.split() for o in s.objects)


def test_tokens_and_unknown_words():
    tokens = L.encode_caption("A large red circle.")
    assert tokens[0] == L.WORDS.index(L.START) and tokens[-1] == L.WORDS.index(L.END)
    assert L.decode_caption(tokens) == "a large red circle"
    with pytest.raises(L.UnknownWords, match=r"unknown word\(s\) 'huge', 'crimson'; the vocabulary is: a, small"):
        L.encode_caption("a huge crimson circle")
    with pytest.raises(L.UnknownWords, match="'why'"):
        L.encode_question("why is the circle red")
    with pytest.raises(ValueError, match="empty"):
        L.encode_caption("  ")


def test_captions_and_questions_are_bounded_and_reserved_tokens_are_not_words():
    """An explanation's cost grows faster than the square of the caption's length (800 words
    took 141 s and 2.6 GB): the longest accepted input is bounded, and said."""
    caption = ("a large red circle left of a small blue square " * 5).split()
    assert len(L.encode_caption(caption[:L.MAX_CAPTION_WORDS])) == L.MAX_CAPTION_WORDS + 2
    with pytest.raises(L.TooLong, match=f"has {L.MAX_CAPTION_WORDS + 1} words; .* at most {L.MAX_CAPTION_WORDS} words"):
        L.encode_caption(" ".join(caption[:L.MAX_CAPTION_WORDS + 1]))
    question = ("what shape is the red object " * 5).split()
    assert len(L.encode_question(" ".join(question[:L.MAX_QUESTION_WORDS]))) == L.MAX_QUESTION_WORDS
    with pytest.raises(L.TooLong, match=f"at most {L.MAX_QUESTION_WORDS} words"):
        L.encode_question(" ".join(question[:L.MAX_QUESTION_WORDS + 1]))
    with pytest.raises(L.TooLong, match=f"characters long; .* at most {L.MAX_CHARS} characters"):
        L.encode_caption("a" * (L.MAX_CHARS + 1))
    # 10,000 unknown words: the message names eight and counts the rest (it was 89 kB)
    with pytest.raises(L.TooLong):  # the public functions refuse 10,000 words by their count
        L.encode_question(" ".join(f"w{i}" for i in range(10_000)))
    many = [f"word{i}" for i in range(10_000)]
    with pytest.raises(L.UnknownWords) as err:
        L._encode(many, L.WORDS)
    assert "and 9992 more" in str(err.value) and len(str(err.value)) < 1000
    with pytest.raises(L.UnknownWords) as err:
        L._encode(["x" * 5000], L.WORDS)
    assert len(str(err.value)) < 1000
    # the reserved tokens are not words, in a caption nor in a question
    for token in (L.PAD, L.START, L.END):
        with pytest.raises(L.UnknownWords, match=f"'{token}'"):
            L.encode_caption(f"a red {token} circle")
    with pytest.raises(L.UnknownWords, match="'<pad>'"):
        L.encode_question("what shape is the <pad> object")
    assert "<" not in str(err.value).split("vocabulary is:")[1]


def test_concept_labels_are_the_words_of_the_caption():
    """The captioner's auxiliary labels: exactly the colours, shapes and colour-shape pairs its
    caption names, nothing about where."""
    from model_zoo.shapes.multimodal import CONCEPTS, concept_labels
    scenes = [L.make_described(5, i, kind) for i in range(6) for kind in ("single", "pair")]
    labels = concept_labels(scenes)
    assert labels.shape == (len(scenes), len(CONCEPTS)) == (12, len(L.COLOURS) * (1 + len(L.CLASSES)) + len(L.CLASSES))
    for s, row in zip(scenes, labels):
        words = L.caption_words(s)
        named = {CONCEPTS[i] for i in np.flatnonzero(row.numpy())}
        expected = {w for w in words if w in L.COLOURS or w in L.CLASSES}
        expected |= {f"{a} {b}" for a, b in zip(words, words[1:]) if a in L.COLOURS and b in L.CLASSES}
        assert named == expected and len(named) == 3 * len(s.objects)
