"""Text from outside (file names, URL parameters, database messages) shown as written."""
from __future__ import annotations

import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~=$:])")


def plain(text) -> str:
    """``text`` with Markdown's special characters escaped: a crafted link or image in a file
    name or a URL parameter shows as the characters it is made of and never renders live."""
    return _MARKDOWN.sub(r"\\\1", str(text))
