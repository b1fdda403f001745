"""Post text as the models should read it, with every character kept in place.

Raw posts carry HTML entities (``Canada &amp; ...`` made ``amp`` an entity),
URLs and retweet prefixes the models were never trained on. Each is replaced
here by what it means padded with spaces, or by spaces, so the normalised text
has **the same length** as the post: a mention's character offsets still
point into the post as stored, and the graph, the observations and the
console keep showing the post's own text.

@handles are single words already (``extractors.spans.WORD``), so a handle is
tagged whole or not at all, never cut into pieces; the ``#`` of a hashtag is its
own word, and the graph key drops it (``graph_store.records.canonical_key``).
"""
from __future__ import annotations

import html
import re

from mkg_common.text import RETWEET_PREFIX, URL

_ENTITY = re.compile(r"&(?:#\d{1,7}|#x[0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});")
# "RT @source:" at the start, and "RT"/"via" before a handle anywhere: who passed the post on, not what it says
_PASSED_ON = re.compile(r"\b(?:RT|via)(?=\s+@\w+)")


def _spaced(text: str) -> str:
    return " " * len(text)


def _entity(match: re.Match) -> str:
    raw = match.group()
    decoded = html.unescape(raw)
    if decoded == raw or len(decoded) > len(raw):
        return raw
    return decoded + " " * (len(raw) - len(decoded))


def normalise_text(text: str) -> str:
    """``text`` with HTML entities decoded, URLs and retweet markers blanked; same length."""
    out = _ENTITY.sub(_entity, text)
    out = URL.sub(lambda m: _spaced(m.group()), out)
    out = RETWEET_PREFIX.sub(lambda m: _spaced(m.group()), out)
    out = _PASSED_ON.sub(lambda m: _spaced(m.group()), out)
    return out
