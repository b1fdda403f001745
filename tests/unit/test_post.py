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
    assert post.image.open().size == (8, 8)
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
    (payload(image={"base64": base64.b64encode(b"not an image").decode()}), "not a decodable image"),
    (payload(image={"base64": "%%%"}), "not valid base64"),
    (payload(image={"path": "http://example.com/a.jpg"}), "not a URL"),
    (payload(extra_field=1), "extra_field: Extra inputs are not permitted"),
    (payload(annotations={"entities": [{"id": "e1", "start": 0, "end": 99, "type": "PER"}]}), "outside the text"),
    (payload(annotations={"relations": [{"head": "a", "tail": "b", "type": "x"}]}), "unknown entity"),
])
def test_invalid_posts_name_the_reason(raw, reason):
    with pytest.raises(InvalidPost) as err:
        parse_post(raw)
    assert reason in err.value.reason


def test_five_megabyte_text_is_rejected():
    with pytest.raises(InvalidPost, match="at most"):
        parse_post(payload(text="a" * 5_000_000))
