import base64
import io
import json

import pytest
from PIL import Image

from pipeline.post import MAX_TEXT_CHARS, InvalidPost, parse_post

GOOD = {"id": "p1", "text": "Obama visited Paris", "created_at": "2024-05-01T10:00:00Z"}


def payload(**changes):
    post = {**GOOD, **changes}
    return json.dumps({k: v for k, v in post.items() if v is not None}).encode()


def png_b64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_valid_post_with_image_and_annotations():
    post = parse_post(payload(
        image={"base64": png_b64()},
        annotations={"entities": [{"id": "e1", "start": 0, "end": 5, "type": "PER"},
                                  {"id": "e2", "start": 14, "end": 19, "type": "LOC"}],
                     "relations": [{"head": "e1", "tail": "e2", "type": "/per/loc/place_of_residence"}]},
    ))
    assert post.image.base64 == png_b64()  # decoding is the image stage's (tests/unit/test_images.py)
    assert post.created_at_iso == "2024-05-01T10:00:00.000000Z"
    assert post.annotations.relations[0].head == "e1"


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "invalid JSON"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"[1, 2]", "JSON object"),
    (payload(text=None), "text: Field required"),
    (payload(text="   "), "text is blank"),
    (payload(id=42), "id: Input should be a valid string"),
    (payload(created_at="yesterday"), "created_at"),
    (payload(text="x" * (MAX_TEXT_CHARS + 1)), "text: String should have at most"),
    (payload(image={"path": "http://example.com/a.jpg"}), "not a URL"),
    (payload(extra_field=1), "extra_field: Extra inputs are not permitted"),
    (payload(annotations={"entities": [{"id": "e1", "start": 0, "end": 99, "type": "PER"}]}), "outside the text"),
    (payload(annotations={"relations": [{"head": "a", "tail": "b", "type": "x"}]}), "unknown entity"),
])
def test_invalid_posts_name_the_reason(raw, reason):
    with pytest.raises(InvalidPost) as err:
        parse_post(raw)
    assert reason in err.value.reason


@pytest.mark.parametrize("start, end", [(7, 2), (5, 4), (3, 3)], ids=["inverted", "inverted-by-one", "empty"])
def test_an_inverted_or_empty_annotation_span_is_refused(start, end):
    """Bug once let through: a span whose end is not after its start names no characters, and a
    labelled-data ingest would store an entity with no text. The text has 19 characters, so only
    the order of the two ends can be wrong here."""
    raw = payload(annotations={"entities": [{"id": "e1", "start": start, "end": end, "type": "PER"}]})
    with pytest.raises(InvalidPost) as err:
        parse_post(raw)
    assert "annotation entity 'e1' span" in err.value.reason and "empty or inverted" in err.value.reason


def test_five_megabyte_text_is_rejected():
    with pytest.raises(InvalidPost, match="at most"):
        parse_post(payload(text="a" * 5_000_000))


def _reason(raw) -> str:
    with pytest.raises(InvalidPost) as err:
        parse_post(raw)
    return err.value.reason


@pytest.mark.parametrize("field", ["text", "author", "source", "id"])
@pytest.mark.parametrize("bad, why", [("\x00", "NUL"), ("\ud800", "lone surrogate")])
def test_nul_and_lone_surrogates_are_refused_in_every_string_field(field, bad, why):
    raw = json.dumps({**GOOD, field: f"Obama{bad}visited"}).encode()  # json escapes them: valid UTF-8 on the wire
    reason = _reason(raw)
    assert field in reason and why in reason


def test_bad_strings_are_found_deep_in_annotations():
    ann = {"entities": [{"id": "e1", "start": 0, "end": 5, "type": "PER\udfff"}]}
    assert "annotations.entities.0.type" in _reason(payload(annotations=ann))
    assert "lone surrogate" in _reason(payload(image={"path": "a\udc80.png"}))


def test_hostile_json_is_a_clear_parse_error_not_a_crash():
    assert "nested too deeply" in _reason(b"[" * 100_000 + b"]" * 100_000)
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    assert "nested more than" in _reason(payload(annotations={"entities": deep}))
    assert "invalid JSON" in _reason(b'{"id": "a", "text": "b", "created_at": ' + b"9" * 5000 + b"}")


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00",
                                  "1970-01-01T00:00:00Z", "2150-01-01T00:00:00Z"])
def test_dates_outside_the_sane_range_are_refused(when):
    assert "created_at" in _reason(payload(created_at=when))


def test_ids_are_stripped_so_resent_posts_keep_one_identity():
    a, b = parse_post(payload(id=" p1")), parse_post(payload(id="p1 \t"))
    assert a.id == b.id == "p1" and a.content_hash == b.content_hash
    assert "id" in _reason(payload(id="   "))
    assert parse_post(payload(text="other")).content_hash != a.content_hash


@pytest.mark.parametrize("text", ["\u200b\u200b", " \u200e\u202e\ufeff ", "\u2066\u2069\u00ad"])
def test_text_of_only_invisible_characters_is_blank(text):
    assert "blank" in _reason(payload(text=text))


def test_a_reason_names_the_field_and_says_exactly_what_is_wrong():
    """Reasons are read by people in the dead-letter topic and the console: the field's path, one
    colon, what is wrong; at most three problems, joined by '; '. (Mutation testing found these
    wordings unchecked.)"""
    assert _reason(payload(text="a\x00b")) == "text: contains a NUL character"
    entity = {"id": "e1", "start": 0, "end": 5, "type": "PER\x00"}
    assert _reason(payload(annotations={"entities": [entity]})) == \
        "annotations.entities.0.type: contains a NUL character"
    assert _reason(payload(annotations={"entities": [{"i\x00d": "e1"}]})) == \
        "annotations.entities.0: a key contains a NUL character"
    assert _reason(json.dumps({"\x00": 1, **GOOD}).encode()) == "post: a key contains a NUL character"
    assert _reason(payload(id=42, text=None)) == "id: Input should be a valid string; text: Field required"
    four = _reason(payload(id=42, text=None, author=5, source=6))
    assert four.count("; ") == 2 and four.startswith("id: ")  # the first three of four problems
    assert _reason(b"[1, 2]") == "post must be a JSON object, got list"
    assert _reason(b"[" * 100_000 + b"]" * 100_000) == "invalid JSON: nested too deeply"
    digits = _reason(b'{"id": 1' + b"1" * 5000 + b"}")
    assert digits.startswith("invalid JSON: Exceeds the limit (4300 digits)") and len(digits) <= len("invalid JSON: ") + 200


def test_nesting_is_refused_one_level_past_the_limit_and_not_before():
    """MAX_NESTING (32) levels below the post object are read; one more is refused before anything
    recurses. ``image.path`` is 2 levels down, so k lists around a string put it at 2 + k."""
    from pipeline.post import MAX_NESTING

    def nested(k):
        value = "a.png"
        for _ in range(k):
            value = [value]
        return value

    at_limit = _reason(payload(image={"path": nested(MAX_NESTING - 2)}))
    assert "nested" not in at_limit and at_limit.startswith("image.path: Input should be a valid string")
    past = _reason(payload(image={"path": nested(MAX_NESTING - 1)}))
    assert past == "image.path" + ".0" * (MAX_NESTING - 1) + f": nested more than {MAX_NESTING} levels"


def test_the_payload_cap_is_inclusive_and_to_json_leaves_out_what_was_not_given():
    from pipeline.post import MAX_PAYLOAD_BYTES

    raw = payload()
    exactly = raw + b" " * (MAX_PAYLOAD_BYTES - len(raw))  # white space after the object is valid JSON
    assert parse_post(exactly).id == "p1"
    assert _reason(exactly + b" ") == f"payload is {MAX_PAYLOAD_BYTES + 1} bytes, more than {MAX_PAYLOAD_BYTES}"
    wire = json.loads(parse_post(raw).to_json())
    assert set(wire) == {"id", "text", "created_at"}  # no null author, source, image ...


def test_a_post_built_in_code_is_checked_like_one_from_the_wire():
    """The storable-strings check runs for ``Post.model_validate`` too, whatever it is given."""
    from pydantic import ValidationError

    from pipeline.post import Post

    with pytest.raises(ValidationError) as err:
        Post.model_validate("a\x00b")
    assert "post: contains a NUL character" in str(err.value)


def test_a_chain_of_empty_keys_at_the_top_is_reported_as_the_post():
    """A key named "" at the top adds nothing to the path, so a hostile chain ``{"": {"": ...}}``
    keeps an empty path at every level: the nesting limit must still trip, and the reason falls
    back to naming ``post``. (Mutation testing: this fallback was judged unreachable, and is not.)
    The chain's first value is 1 level below the post, so k dicts put the innermost value at 1 + k."""
    from pipeline.post import MAX_NESTING

    def chain(k):
        value: object = 1
        for _ in range(k):
            value = {"": value}
        return value

    within = _reason(json.dumps({**GOOD, "": chain(MAX_NESTING - 1)}).encode())
    assert "nested" not in within and "Extra inputs are not permitted" in within  # the "" field itself
    past = _reason(json.dumps({**GOOD, "": chain(MAX_NESTING)}).encode())
    assert past == "post: nested more than 32 levels"
    assert _reason(json.dumps({**GOOD, "": "a\x00b"}).encode()) == "post: contains a NUL character"
