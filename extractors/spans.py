"""Words and spans: where a post's characters, its words and BIO tags meet.

The extractors, the labelled data of continual learning and the pipeline's
observations all split a text into the same words and map character spans
(entity annotations, mentions) onto them; the split and the mapping live
here once, so a span means the same words everywhere.
"""
from __future__ import annotations

import re
from typing import Sequence

from .datasets import OUTSIDE

# Tweet-style word split like the training data: mentions, URLs, words, single punctuation.
WORD = re.compile(r"@\w+|https?://\S+|\w+(?:'\w+)?|[^\w\s]", re.UNICODE)

Word = tuple[str, int, int]  # the word, its first character and one past its last


def words_with_offsets(text: str) -> list[Word]:
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


def word_span(words: Sequence[Word], start: int, end: int) -> tuple[int, int] | None:
    """The [first, last + 1) words overlapping the characters [start, end); None if none does."""
    idx = [i for i, (_, c0, c1) in enumerate(words) if c0 < end and c1 > start]
    return (idx[0], idx[-1] + 1) if idx else None


def find_name(text: str, name: str, start: int = 0) -> int:
    """Where ``name`` occurs in ``text`` at or after ``start`` as a whole name (not inside a longer
    word: "Miyu" is not found in "@FollowingMiyu"), else the first plain occurrence, else -1."""
    left = r"(?<!\w)" if name[:1].isalnum() or name[:1] == "_" else ""
    right = r"(?!\w)" if name[-1:].isalnum() or name[-1:] == "_" else ""
    found = re.compile(left + re.escape(name) + right).search(text, start)
    return found.start() if found else text.find(name, start)


def joined_tokens(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The tokens joined by single spaces, and each token's [start, end) characters in that text."""
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    return " ".join(tokens), offsets


def bio_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """[start, end) word spans with their type from BIO tags."""
    spans, start, etype = [], None, None
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        if start is not None and (tag == OUTSIDE or tag.startswith("B-") or tag[2:] != etype):
            spans.append((start, i, etype))
            start = etype = None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, etype = i, tag[2:]
    return spans
