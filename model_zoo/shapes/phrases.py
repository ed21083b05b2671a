"""Phrases about the shapes world's described scenes: the vocabulary of ``shapes-clip``, a small
grammar, and whether a phrase is true of a scene (exact, from the scene's objects).

A phrase names one object, or two objects and where one lies from the other::

    "circle"   "a red circle"   "the small red circle"   "red object"   "large"
    "the square left of the triangle"   "a blue object above a small circle"

A noun phrase is an optional article ("a", "the"), then at most one size and one colour word in
any order, then a shape word, or "object" / "shape" (any shape); the noun may be left out after an
adjective. Relations are "left of", "right of", "above" and "below", read as the captions read
them (``language.make_described``): "A left of B" holds when the two lie more side by side than
one above the other and A is the left one.

The truth of a phrase is read off the scene, not learned: :func:`true_keys` gives the set of
every phrase key a scene makes true (at most 7 one-object keys per object and 2 x 49 two-object
keys for a pair), so the training loss can label every image against every phrase of a batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from . import language as L
from .world import CLASSES

__all__ = ["PHRASE_WORDS", "SEP", "RELATIONS", "PhraseError", "Noun", "Phrase", "parse", "phrase_words",
           "encode_phrases", "split_packed", "true_keys", "is_true", "named_object", "scene_phrases",
           "sample_phrase", "negative_phrase", "MAX_PHRASE_WORDS", "MAX_PHRASES"]

SEP = "<sep>"  # between the phrases of one packed input (several phrases share one forward pass)
RELATIONS = ("left of", "right of", "above", "below")
PHRASE_WORDS = (L.PAD, SEP, "a", "the", *L.SIZES, *L.COLOURS, *CLASSES, "object", "shape", "left", "right", "of",
                "above", "below")
MAX_PHRASE_WORDS = 16
MAX_PHRASES = 64  # phrases explained from one forward pass (zero-shot prompts, word contributions)
_ARTICLES = ("a", "the")
_ANY = ("object", "shape")


class PhraseError(ValueError):
    """A phrase outside the grammar (the message says which part)."""


@dataclass(frozen=True)
class Noun:
    size: str | None = None
    colour: str | None = None
    shape: str | None = None

    def matches(self, obj) -> bool:
        return ((self.size is None or obj.size == self.size) and (self.colour is None or obj.colour == self.colour)
                and (self.shape is None or obj.name == self.shape))

    @property
    def key(self) -> tuple:
        return (self.size, self.colour, self.shape)


@dataclass(frozen=True)
class Phrase:
    first: Noun
    relation: str | None = None
    second: Noun | None = None

    @property
    def key(self) -> tuple:
        return (self.first.key,) if self.relation is None else (self.first.key, self.relation, self.second.key)


def phrase_words(text: str) -> list[str]:
    """The words of a typed phrase: lower case, punctuation dropped; unknown words raise
    ``language.UnknownWords`` naming them, an overlong phrase ``language.TooLong``."""
    words = L._bounded_words(text, "phrase", MAX_PHRASE_WORDS)
    _ids(words)  # names the unknown words
    return words


_INDEX = {w: i for i, w in enumerate(PHRASE_WORDS) if w not in (L.PAD, SEP)}


def _ids(words) -> list[int]:
    unknown = [w for w in words if w not in _INDEX]
    if unknown:  # "<sep>" and "<pad>" are tokens, not words: typed, they are unknown words
        raise L.UnknownWords(dict.fromkeys(unknown), [w for w in PHRASE_WORDS if w != SEP])
    return [_INDEX[w] for w in words]


def _noun(words: list[str], text: str) -> Noun:
    if words and words[0] in _ARTICLES:
        words = words[1:]
    size = colour = shape = None
    for i, w in enumerate(words):
        last = i == len(words) - 1
        if w in L.SIZES and size is None:
            size = w
        elif w in L.COLOURS and colour is None:
            colour = w
        elif (w in CLASSES or w in _ANY) and last:
            shape = w if w in CLASSES else None
        else:
            raise PhraseError(f"cannot read {text!r}: {w!r} is out of place (a phrase is [a|the] [size] [colour] "
                              f"shape, or two of them joined by {', '.join(RELATIONS)})")
    if not words or (size is None and colour is None and words[-1] not in (*CLASSES, *_ANY)):
        raise PhraseError(f"cannot read {text!r}: a part names no object")
    return Noun(size, colour, shape)


def parse(text_or_words) -> Phrase:
    """The phrase's structure (:class:`PhraseError` where it does not follow the grammar)."""
    words = phrase_words(text_or_words) if isinstance(text_or_words, str) else list(text_or_words)
    text = " ".join(words)
    for rel in RELATIONS:
        r = rel.split()
        for i in range(len(words) - len(r) + 1):
            if words[i:i + len(r)] == r:
                return Phrase(_noun(words[:i], text), rel, _noun(words[i + len(r):], text))
    return Phrase(_noun(words, text))


def encode_phrases(phrases) -> tuple[int, ...]:
    """Several phrases as one token input: their ids joined by ``<sep>`` (the model gives one
    similarity per phrase). Unknown words raise ``language.UnknownWords``."""
    phrases = list(phrases)
    if not phrases:
        raise ValueError("no phrase given")
    if len(phrases) > MAX_PHRASES:
        raise L.TooLong(f"{len(phrases)} phrases; the studio compares at most {MAX_PHRASES} at once")
    sep = PHRASE_WORDS.index(SEP)
    out: list[int] = []
    for k, p in enumerate(phrases):
        words = phrase_words(p) if isinstance(p, str) else list(p)
        out += ([sep] if k else []) + _ids(words)
    return tuple(out)


def split_packed(row) -> list[list[int]]:
    """The phrases of one packed input (ids, padding dropped)."""
    sep = PHRASE_WORDS.index(SEP)
    phrases, current = [], []
    for t in (int(t) for t in row):
        if t == sep:
            phrases.append(current)
            current = []
        elif t != 0:
            current.append(t)
    phrases.append(current)
    if any(not p for p in phrases):
        raise ValueError("an empty phrase in the packed input")
    return phrases


def _relation(a, b) -> str:
    """Where object ``a`` lies from ``b``, as the captions say it."""
    (ax, ay), (bx, by) = a.centre, b.centre
    if abs(ax - bx) >= abs(ay - by):
        return "left of" if ax < bx else "right of"
    return "above" if ay < by else "below"


def _noun_keys(obj) -> list[tuple]:
    keys = []
    for size, colour, shape in product((obj.size, None), (obj.colour, None), (obj.name, None)):
        keys.append((size, colour, shape))
    return keys  # the all-None key included: "object"


def true_keys(scene) -> frozenset:
    """Every phrase key (:attr:`Phrase.key`) true of the described scene."""
    keys = set()
    for o in scene.objects:
        keys.update((k,) for k in _noun_keys(o))
    for a in scene.objects:
        for b in scene.objects:
            if a is not b:
                rel = _relation(a, b)
                keys.update((ka, rel, kb) for ka in _noun_keys(a) for kb in _noun_keys(b))
    return frozenset(keys)


def is_true(scene, phrase) -> bool:
    return (parse(phrase) if isinstance(phrase, str) else phrase).key in true_keys(scene)


def named_object(scene, phrase) -> int | None:
    """The index of the one object a one-object phrase names in the scene (None: none or several)."""
    p = parse(phrase) if isinstance(phrase, str) else phrase
    hits = [i for i, o in enumerate(scene.objects) if p.first.matches(o)]
    if p.relation is not None:
        hits = [i for i in hits if any(j != i and p.second.matches(o) and _relation(scene.objects[i], o) == p.relation
                                       for j, o in enumerate(scene.objects))]
    return hits[0] if len(hits) == 1 else None


def _say(noun: Noun, article: str = "the") -> str:
    words = [w for w in (noun.size, noun.colour, noun.shape or "object") if w]
    return " ".join(([article] if article else []) + words)


def scene_phrases(scene) -> list[str]:
    """The phrases a page offers for a scene: each object by colour and shape, with its size, and
    the pair's relation."""
    out = []
    for o in scene.objects:
        out += [f"{o.colour} {o.name}", f"{o.size} {o.colour} {o.name}"]
    if len(scene.objects) == 2:
        a, b = scene.objects
        out.append(f"the {a.name} {_relation(a, b)} the {b.name}")
    return out


def sample_phrase(scene, rng: np.random.Generator) -> Phrase:
    """A true phrase about the scene: one object with a random part of its description, or, on a
    pair, one object placed from the other (a third of the time)."""
    def noun(o):
        while True:
            n = Noun(o.size if rng.random() < 0.4 else None, o.colour if rng.random() < 0.7 else None,
                     o.name if rng.random() < 0.8 else None)
            if n != Noun():
                return n
    objs = scene.objects
    if len(objs) == 2 and rng.random() < 1 / 3:
        i = int(rng.integers(2))
        return Phrase(noun(objs[i]), _relation(objs[i], objs[1 - i]), noun(objs[1 - i]))
    return Phrase(noun(objs[int(rng.integers(len(objs)))]))


def negative_phrase(scene, rng: np.random.Generator) -> Phrase:
    """A phrase one word away from a true one: another colour, shape or size, or the two objects
    of a relation swapped. Often false of the scene (the loss reads its truth, it is not assumed):
    these teach which colour goes with which shape."""
    p = sample_phrase(scene, rng)
    if p.relation is not None and rng.random() < 0.5:
        return Phrase(p.second, p.relation, p.first)
    n = p.first
    part = int(rng.integers(3))
    if part == 0 or (part == 2 and n.size is None and n.shape is None):
        n = Noun(n.size, str(rng.choice([c for c in L.COLOURS if c != n.colour])), n.shape)
    elif part == 1:
        n = Noun(n.size, n.colour, str(rng.choice([c for c in CLASSES if c != n.shape])))
    else:
        n = Noun(str(rng.choice([s for s in L.SIZES if s != n.size])), n.colour, n.shape)
    return Phrase(n, p.relation, p.second)


def say(phrase: Phrase) -> str:
    """A phrase's words (articles as the captions put them)."""
    if phrase.relation is None:
        return _say(phrase.first, "a" if phrase.first.shape else "")
    return f"{_say(phrase.first)} {phrase.relation} {_say(phrase.second)}"
