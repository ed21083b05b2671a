"""Text from outside (file names, URL parameters, database messages) shown as written."""
from __future__ import annotations

import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~=$:])")


def plain(text) -> str:
    """``text`` with Markdown's special characters escaped: a crafted link or image in a file
    name or a URL parameter shows as the characters it is made of and never renders live."""
    return _MARKDOWN.sub(r"\\\1", str(text))


# an absolute file-system path: starts at a word boundary that is not part of a URL (no letter,
# digit, ':', '/' or '.' just before it), e.g. /root/.cache/torch/x.pth; URLs keep their paths
_PATH = re.compile(r"(?<![\w:/.~])~?/(?:[\w.+@-]+/)*[\w.+@-]*")


def without_paths(text) -> str:
    """``text`` with every absolute file-system path of this server replaced by "(a server
    path)": what a visitor is told, where an administrator sees the details."""
    return _PATH.sub("(a server path)", str(text))


def count(n: int, word: str) -> str:
    """``n`` ``word``s, in English: "1 participant", "2 participants", "1,200 answers"."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")
