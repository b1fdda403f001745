"""UTC timestamps as the project writes them: ISO 8601 with a ``Z`` suffix.

One helper for every record that carries a time (observations, labelled
examples, task history, candidates, completion runs), so the strings sort and
parse alike everywhere (``datetime.fromisoformat`` reads them).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

_FORMATS = {"microseconds": "%Y-%m-%dT%H:%M:%S.%fZ", "seconds": "%Y-%m-%dT%H:%M:%SZ"}


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def utc_iso(t: datetime | None = None, timespec: Literal["microseconds", "seconds"] = "microseconds") -> str:
    """``t`` (default: now) in UTC as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    return (t or utc_now()).astimezone(timezone.utc).strftime(_FORMATS[timespec])
