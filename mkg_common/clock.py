"""UTC timestamps as the project writes them: ISO 8601 with a ``Z`` suffix.

One helper for every record that carries a time (observations, labelled
examples, task history, candidates, completion runs, snapshots, dead letters,
post times in the graph), so the strings sort and parse alike everywhere
(``datetime.fromisoformat`` reads them); one for the stamps in version names.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

_FORMATS = {"microseconds": "%Y-%m-%dT%H:%M:%S.%fZ", "seconds": "%Y-%m-%dT%H:%M:%SZ"}
# version names: sortable, no separators a file system or a URL would mind
_STAMPS = {"seconds": "%Y%m%dT%H%M%S", "microseconds": "%Y%m%dT%H%M%S%f"}


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def utc_iso(t: datetime | None = None, timespec: Literal["microseconds", "seconds"] = "microseconds") -> str:
    """``t`` (default: now) in UTC as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    return (t or utc_now()).astimezone(timezone.utc).strftime(_FORMATS[timespec])


def utc_stamp(t: datetime | None = None, timespec: Literal["microseconds", "seconds"] = "seconds") -> str:
    """``t`` (default: now) in UTC as ``YYYYMMDDTHHMMSS[ffffff]``: the time part of version names."""
    return (t or utc_now()).astimezone(timezone.utc).strftime(_STAMPS[timespec])
