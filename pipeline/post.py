"""The post record on the wire (JSON) and its strict validation.

Every way a payload can be wrong ends in :class:`InvalidPost` with a short
reason that names the field, because that reason is what a dead letter
carries and what an operator reads.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
from datetime import datetime, timezone
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator, model_validator

MAX_TEXT_CHARS = 20_000
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_PAYLOAD_BYTES = 12 * 1024 * 1024


class InvalidPost(ValueError):
    """A payload that is not a valid post; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Image(_Strict):
    """An image given either as a local file path or as base64 bytes (no URLs)."""

    path: StrictStr | None = None
    base64: StrictStr | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "Image":
        if (self.path is None) == (self.base64 is None):
            raise ValueError("give exactly one of image.path or image.base64")
        if self.path is not None and "://" in self.path:
            raise ValueError("image.path must be a local file path, not a URL")
        if self.base64 is not None:
            _check_image_bytes(self.data())
        return self

    def data(self) -> bytes:
        """The raw image bytes (read from disk for a path)."""
        if self.base64 is not None:
            try:
                return base64.b64decode(self.base64, validate=True)
            except binascii.Error as exc:
                raise ValueError(f"image.base64 is not valid base64: {exc}") from None
        with open(self.path, "rb") as fh:  # type: ignore[arg-type]
            return fh.read()

    def open(self):
        """A decoded Pillow image in RGB."""
        from PIL import Image as PILImage

        return PILImage.open(io.BytesIO(self.data())).convert("RGB")


def _check_image_bytes(data: bytes) -> None:
    from PIL import Image as PILImage, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"image is {len(data)} bytes, more than {MAX_IMAGE_BYTES}")
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"image bytes are not a decodable image: {exc}") from None


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

    id: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    text: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    created_at: datetime
    author: StrictStr | None = None
    source: StrictStr | None = None
    language: Annotated[StrictStr, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]+)?$")] | None = None
    image: Image | None = None
    annotations: Annotations | None = None

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
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank")
        return value

    @model_validator(mode="after")
    def _annotations_fit(self) -> "Post":
        if self.annotations is None:
            return self
        ids = set()
        for ent in self.annotations.entities:
            if ent.end > len(self.text) or ent.start >= ent.end:
                raise ValueError(f"annotation entity {ent.id!r} span [{ent.start},{ent.end}) is outside the text")
            ids.add(ent.id)
        for rel in self.annotations.relations:
            for end in (rel.head, rel.tail):
                if end not in ids:
                    raise ValueError(f"annotation relation refers to unknown entity {end!r}")
        return self

    @property
    def created_at_iso(self) -> str:
        """UTC ISO-8601 with a fixed format, so strings compare in time order."""
        return self.created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


def _format_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "post"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
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
    if not isinstance(obj, dict):
        raise InvalidPost(f"post must be a JSON object, got {type(obj).__name__}")
    try:
        return Post.model_validate(obj)
    except ValidationError as exc:
        raise InvalidPost(_format_error(exc)) from None
