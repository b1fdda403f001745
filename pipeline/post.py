"""The post record on the wire (JSON) and its strict validation.

Every way a payload can be wrong ends in :class:`InvalidPost` with a short
reason that names the field, because that reason is what a dead letter
carries and what an operator reads.
"""
from __future__ import annotations

import hashlib
import json
import unicodedata
from datetime import datetime, timezone
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator, model_validator

from graph_store.records import invisible_free
from mkg_common.clock import utc_iso

MAX_TEXT_CHARS = 20_000
MAX_PAYLOAD_BYTES = 12 * 1024 * 1024
# Posts dated outside this window are refused: before it no social network
# existed, after it a clock or a producer is broken, and datetimes near the
# ends of Python's range overflow when converted to UTC.
MIN_CREATED_AT = datetime(1990, 1, 1, tzinfo=timezone.utc)
MAX_CREATED_AT = datetime(2100, 1, 1, tzinfo=timezone.utc)
MAX_NESTING = 32  # a post is a few levels deep; deeper JSON is refused before it can recurse


class InvalidPost(ValueError):
    """A payload that is not a valid post; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _bad_character(value: str) -> str | None:
    """Why ``value`` cannot be stored: NUL ends C strings in the graph engines,
    lone surrogates cannot be encoded as UTF-8; None when it is fine."""
    if "\x00" in value:
        return "contains a NUL character"
    for ch in value:
        if "\ud800" <= ch <= "\udfff":
            return f"contains a lone surrogate (U+{ord(ch):04X})"
    return None


def _check_strings(obj: object) -> None:
    """Refuse NUL, lone surrogates and excessive nesting anywhere in a decoded post.

    Iterative, so hostile nesting cannot exhaust the stack here. Raises
    ValueError (pydantic turns it into a validation error) naming the field:
    ``author``, ``annotations.entities.0.type``, a key.
    """
    stack: list[tuple[object, str, int]] = [(obj, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_NESTING:
            raise ValueError(f"{where or 'post'}: nested more than {MAX_NESTING} levels")
        if isinstance(value, str):
            if (why := _bad_character(value)) is not None:
                raise ValueError(f"{where or 'post'}: {why}")
        elif isinstance(value, dict):
            for key, item in value.items():
                path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and (why := _bad_character(key)) is not None:
                    raise ValueError(f"{where or 'post'}: a key {why}")
                stack.append((item, path, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}.{i}", depth + 1) for i, item in enumerate(value))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Image(_Strict):
    """An image given either as a local file path or as base64 bytes (no URLs).

    Only the reference is validated here. Reading and decoding are the image
    stage's job (:mod:`pipeline.images`): it confines paths to the configured
    folders, caps bytes and pixels, and decodes only for extractors that use
    images.
    """

    path: StrictStr | None = None
    base64: StrictStr | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "Image":
        if (self.path is None) == (self.base64 is None):
            raise ValueError("give exactly one of image.path or image.base64")
        if self.path is not None and "://" in self.path:
            raise ValueError("image.path must be a local file path, not a URL")
        return self

    @property
    def reference(self) -> str:
        """What the graph records of the image: the path as given, or the sha256 of base64 bytes."""
        if self.path is not None:
            return self.path
        return "base64:sha256:" + hashlib.sha256(self.base64.encode("ascii", "replace")).hexdigest()


class EntityAnnotation(_Strict):
    """A gold entity: character span [start, end) of the text and its type."""

    id: StrictStr
    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(gt=0)]
    type: StrictStr


class RelationAnnotation(_Strict):
    """A gold relation between two annotated entities (by id)."""

    head: StrictStr
    tail: StrictStr
    type: StrictStr


class Annotations(_Strict):
    entities: list[EntityAnnotation] = []
    relations: list[RelationAnnotation] = []


class Post(_Strict):
    """One social-media post."""

    id: Annotated[StrictStr, Field(min_length=1, max_length=256)]  # surrounding whitespace stripped
    text: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    created_at: datetime
    author: StrictStr | None = None
    source: StrictStr | None = None
    language: Annotated[StrictStr, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]+)?$")] | None = None
    image: Image | None = None
    annotations: Annotations | None = None

    @model_validator(mode="before")
    @classmethod
    def _storable_strings(cls, data: object) -> object:
        _check_strings(data)  # also when a Post is built in code, not only from the wire
        return data

    @field_validator("id", mode="before")
    @classmethod
    def _strip_id(cls, value: object) -> object:
        # " a" and "a " are the same post re-sent by a sloppy producer, not two posts
        if not isinstance(value, str):
            return value
        for ch in value.strip():
            if unicodedata.category(ch) == "Cc" and not ch.isspace():
                # an id is a key, and FalkorDB's index cannot find one holding U+0001 again
                raise ValueError(f"contains a control character (U+{ord(ch):04X})")
        return value.strip()

    @field_validator("created_at", mode="before")
    @classmethod
    def _parse_time(cls, value: object) -> datetime:
        # JSON carries ISO-8601 strings; strict mode would refuse them otherwise.
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("created_at must be an ISO-8601 timestamp") from None
        if not isinstance(value, datetime):
            raise ValueError("created_at must be an ISO-8601 timestamp string")
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        try:
            value = value.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError("created_at is out of range") from None
        if not MIN_CREATED_AT <= value < MAX_CREATED_AT:
            raise ValueError(f"created_at must be between {MIN_CREATED_AT:%Y-%m-%d} and {MAX_CREATED_AT:%Y-%m-%d}")
        return value

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not invisible_free(value).strip():
            raise ValueError("text is blank (only whitespace or invisible characters)")
        return value

    @model_validator(mode="after")
    def _annotations_fit(self) -> "Post":
        if self.annotations is None:
            return self
        ids = set()
        for ent in self.annotations.entities:
            if ent.start >= ent.end:
                raise ValueError(f"annotation entity {ent.id!r} span [{ent.start},{ent.end}) is empty or inverted")
            if ent.end > len(self.text):
                raise ValueError(f"annotation entity {ent.id!r} span [{ent.start},{ent.end}) is outside the text")
            ids.add(ent.id)
        for rel in self.annotations.relations:
            for end in (rel.head, rel.tail):
                if end not in ids:
                    raise ValueError(f"annotation relation refers to unknown entity {end!r}")
        return self

    @property
    def content_hash(self) -> str:
        """SHA-256 of the validated post: a re-delivery has the same hash, a
        different post under a reused id does not (a conflict)."""
        return hashlib.sha256(self.model_dump_json().encode("utf-8")).hexdigest()

    @property
    def created_at_iso(self) -> str:
        """UTC ISO-8601 with a fixed format, so strings compare in time order."""
        return utc_iso(self.created_at)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


def _format_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_post(payload: bytes | str) -> Post:
    """Decode and validate one wire payload, or raise :class:`InvalidPost`."""
    if isinstance(payload, bytes):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise InvalidPost(f"payload is {len(payload)} bytes, more than {MAX_PAYLOAD_BYTES}")
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPost(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        obj = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise InvalidPost(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InvalidPost("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than Python's 4300-digit limit
        raise InvalidPost(f"invalid JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise InvalidPost(f"post must be a JSON object, got {type(obj).__name__}")
    try:
        return Post.model_validate(obj)
    except ValidationError as exc:
        raise InvalidPost(_format_error(exc)) from None
