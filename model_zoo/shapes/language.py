"""Language in the shapes world: described scenes with named colours and sizes, their captions
and question-answer pairs, deterministic from ``(seed, index)`` like the scenes.

A described scene has one or two objects of different shapes and different named colours
(``COLOURS``), each "small" or "large". Its caption names every object; a pair is ordered so the
relation word is always "left of" or "above" (the first object is the left one when the objects
lie more side by side than one above the other, else the upper one):

    "a large red circle"
    "a small blue square left of a large yellow triangle"

Questions (``QUESTION_TYPES``): "what shape is the <colour> object", "what colour is the
<shape>", "is there a <shape>" (yes / no), "how many objects" (one / two), "what is left of
the <shape>" (a shape, or "nothing"). Token vocabularies are fixed lists (``WORDS``,
``QUESTION_WORDS``, ``ANSWERS``), so token ids never change between runs.

Scenes use their own random stream (kind codes 11 and 12), so the classification world's
scenes, on which the shipped classifiers were trained, are unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .world import CLASSES, SIZE, ShapeObject, _background, _box, _clutter, _place, _shape_mask

__all__ = ["COLOURS", "SIZES", "WORDS", "QUESTION_WORDS", "ANSWERS", "QUESTION_TYPES", "Described",
           "Question", "make_described", "caption_words", "encode_caption", "decode_caption",
           "encode_question", "questions", "UnknownWords", "TooLong", "PAD", "START", "END", "MAX_CAPTION_WORDS",
           "MAX_QUESTION_WORDS", "MAX_CHARS"]

# six hues far apart (an orange between red and yellow made both hard to tell apart, and their
# word maps found their object a third of the time)
COLOURS = {"red": (220, 30, 30), "green": (40, 175, 60), "blue": (45, 80, 225), "yellow": (235, 215, 40),
           "purple": (150, 55, 195), "cyan": (40, 205, 215)}
SIZES = {"small": (6.0, 7.5), "large": (10.0, 11.5)}  # radius ranges at 64 px
PAD, START, END = "<pad>", "<start>", "<end>"
RESERVED = (PAD, START, END)  # tokens, never words a caption or a question may use
# The longest inputs accepted (README, "Security and limits": the longest is explained within
# 2 s and 1.2 GB here; an explanation's cost grows faster than the square of the length). The
# trained captions have at most 11 words and the questions 6.
MAX_CAPTION_WORDS = 24
MAX_QUESTION_WORDS = 16
MAX_CHARS = 300  # a text is refused by its length before it is split into words
_SHOWN_UNKNOWN = 8  # unknown words named in the message; the rest are counted
WORDS = (PAD, START, END, "a", *SIZES, *COLOURS, *CLASSES, "left", "of", "above")
QUESTION_WORDS = (PAD, "what", "shape", "is", "the", "colour", "object", "there", "a", "how", "many",
                  "objects", "left", "of", *COLOURS, *CLASSES)
ANSWERS = (*CLASSES, *COLOURS, "yes", "no", "one", "two", "nothing")
QUESTION_TYPES = ("shape_of_colour", "colour_of_shape", "is_there", "how_many", "left_of")
_KIND_CODE = {"single": 11, "pair": 12}


class UnknownWords(ValueError):
    """Words outside the vocabulary; ``words`` lists them. The message names the first eight
    (each cut at 24 characters) and counts the rest, so it stays short whatever was typed."""

    def __init__(self, words, vocabulary):
        self.words = list(words)
        shown = ", ".join(repr(w if len(w) <= 24 else w[:24] + "...") for w in self.words[:_SHOWN_UNKNOWN])
        more = len(self.words) - _SHOWN_UNKNOWN
        super().__init__(f"unknown word(s) {shown}" + (f" and {more} more" if more > 0 else "")
                         + f"; the vocabulary is: {', '.join(w for w in vocabulary if w not in RESERVED)}")


class TooLong(ValueError):
    """A caption or a question longer than the studio explains (its bound is in the message)."""


@dataclass(frozen=True, eq=False)
class DescribedObject:
    shape: ShapeObject
    colour: str
    size: str
    centre: tuple[float, float]

    @property
    def name(self) -> str:
        return self.shape.name

    @property
    def words(self) -> tuple[str, str, str]:
        return self.size, self.colour, self.shape.name


@dataclass(frozen=True, eq=False)
class Described:
    image: np.ndarray
    objects: tuple[DescribedObject, ...]  # in caption order
    relation: str | None  # "left of" / "above" for pairs
    seed: int
    index: int
    kind: str

    @property
    def caption(self) -> str:
        return " ".join(caption_words(self))

    def __repr__(self):
        return f"Described({self.kind} #{self.index} seed {self.seed}: {self.caption!r})"


@dataclass(frozen=True)
class Question:
    kind: str
    text: str
    answer: str
    about: int | None  # index of the object the question asks about (None: the scene)


def make_described(seed: int, index: int, kind: str = "pair", size: int = SIZE) -> Described:
    """Described scene ``index`` of the world ``seed``: one ("single") or two ("pair") objects."""
    if kind not in _KIND_CODE:
        raise ValueError(f"unknown scene kind {kind!r}; choose single or pair")
    rng = np.random.default_rng([int(seed), int(index), _KIND_CODE[kind], int(size)])
    n = 1 if kind == "single" else 2
    shapes = [int(s) for s in rng.choice(len(CLASSES), n, replace=False)]
    colour_names = [str(c) for c in rng.choice(list(COLOURS), n, replace=False)]
    sizes = [str(s) for s in rng.choice(list(SIZES), n)]
    scale = size / 64.0
    radii = [float(rng.uniform(*SIZES[s])) * scale for s in sizes]
    centres = None
    while centres is None:
        centres = _place(rng, radii, size)
    img, bg = _background(rng, size)
    while any(np.abs(np.array(COLOURS[c]) - bg).sum() < 150 for c in colour_names):
        img, bg = _background(rng, size)  # the named colours must stand out
    _clutter(rng, img, size)
    objects = []
    for label, colour, sz, r, (cx, cy) in zip(shapes, colour_names, sizes, radii, centres):
        mask = _shape_mask(label, cx, cy, r, float(rng.uniform(0, 2 * math.pi)), size)
        shade = np.array(COLOURS[colour], float)[None, :] + rng.normal(0, 6, (int(mask.sum()), 3))
        img[mask] = shade
        objects.append(DescribedObject(ShapeObject(label, _box(mask), mask), colour, sz, (cx, cy)))
    relation = None
    if n == 2:
        (ax, ay), (bx, by) = objects[0].centre, objects[1].centre
        if abs(ax - bx) >= abs(ay - by):
            relation = "left of"
            objects.sort(key=lambda o: o.centre[0])
        else:
            relation = "above"
            objects.sort(key=lambda o: o.centre[1])
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return Described(image, tuple(objects), relation, int(seed), int(index), kind)


def caption_words(scene: Described) -> list[str]:
    first = ["a", *scene.objects[0].words]
    if len(scene.objects) == 1:
        return first
    return [*first, *scene.relation.split(), "a", *scene.objects[1].words]


def word_objects(scene: Described) -> list[int | None]:
    """For each caption word, the object it names (size, colour and shape words), else None."""
    out = [None, 0, 0, 0]
    if len(scene.objects) == 2:
        out += [None] * len(scene.relation.split()) + [None, 1, 1, 1]
    return out


def _encode(words, vocabulary) -> list[int]:
    """Token ids of typed words; the reserved tokens (``<pad>``, ``<start>``, ``<end>``) are not
    words, so typing one is an unknown word like any other."""
    index = {w: i for i, w in enumerate(vocabulary) if w not in RESERVED}
    unknown = [w for w in words if w not in index]
    if unknown:
        raise UnknownWords(dict.fromkeys(unknown), vocabulary)
    return [index[w] for w in words]


def split(text: str) -> list[str]:
    return text.lower().replace("?", " ").replace(".", " ").replace(",", " ").split()


def _bounded_words(text_or_words, what: str, limit: int) -> list[str]:
    if isinstance(text_or_words, str):
        if len(text_or_words) > MAX_CHARS:
            raise TooLong(f"the {what} is {len(text_or_words):,} characters long; the studio explains "
                          f"{what}s of at most {MAX_CHARS} characters and {limit} words")
        words = split(text_or_words)
    else:
        words = [str(w) for w in text_or_words]
    if not words:
        raise ValueError(f"the {what} is empty")
    if len(words) > limit:
        raise TooLong(f"the {what} has {len(words):,} words; the studio explains {what}s of at most "
                      f"{limit} words")
    return words


def encode_caption(text_or_words) -> tuple[int, ...]:
    """<start> words <end> as token ids; unknown words raise :class:`UnknownWords`, a caption
    over :data:`MAX_CAPTION_WORDS` words (or :data:`MAX_CHARS` characters) :class:`TooLong`."""
    words = _bounded_words(text_or_words, "caption", MAX_CAPTION_WORDS)
    return (WORDS.index(START), *_encode(words, WORDS), WORDS.index(END))


def decode_caption(tokens) -> str:
    words = [WORDS[int(t)] for t in tokens]
    words = [w for w in words if w not in (PAD, START)]
    return " ".join(words[:words.index(END)] if END in words else words)


def encode_question(text: str) -> tuple[int, ...]:
    """The question's token ids; unknown words raise :class:`UnknownWords`, a question over
    :data:`MAX_QUESTION_WORDS` words (or :data:`MAX_CHARS` characters) :class:`TooLong`."""
    return tuple(_encode(_bounded_words(text, "question", MAX_QUESTION_WORDS), QUESTION_WORDS))


def questions(scene: Described, rng: np.random.Generator | None = None) -> list[Question]:
    """Every question type that applies to the scene, with its answer (``rng`` picks the shape of
    an "is there" question; by default seeded from the scene)."""
    rng = rng or np.random.default_rng([scene.seed, scene.index, _KIND_CODE[scene.kind], 99])
    out = []
    for i, o in enumerate(scene.objects):
        out.append(Question("shape_of_colour", f"what shape is the {o.colour} object", o.name, i))
        out.append(Question("colour_of_shape", f"what colour is the {o.name}", o.colour, i))
    present = {o.name for o in scene.objects}
    if rng.random() < 0.5:
        o = int(rng.integers(len(scene.objects)))
        out.append(Question("is_there", f"is there a {scene.objects[o].name}", "yes", o))
    else:
        absent = [c for c in CLASSES if c not in present]
        out.append(Question("is_there", f"is there a {absent[int(rng.integers(len(absent)))]}", "no", None))
    out.append(Question("how_many", "how many objects", "one" if len(scene.objects) == 1 else "two", None))
    for i, o in enumerate(scene.objects):
        left = scene.relation == "left of" and i == 1
        out.append(Question("left_of", f"what is left of the {o.name}",
                            scene.objects[0].name if left else "nothing", 0 if left else None))
    return out
