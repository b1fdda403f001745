"""Patterns of raw post text that more than one layer reads: links and retweet markers.

The extractors blank them before the models read a post (``extractors.normalise``),
and the graph leaves them out when it decides which posts are one piece of
evidence (``graph_store.records.evidence_key``); one definition keeps the two
readings of a post the same.
"""
from __future__ import annotations

import re

URL = re.compile(r"(?:https?://|www\.)\S+")
RETWEET_PREFIX = re.compile(r"^\s*RT\s+@\w+\s*:?")  # "RT @who:" at the start: who passed the post on
