from pipeline.dead_letter import DeadLetter, FileDeadLetterSink, read_dead_letters
from pipeline.sources.base import SourceRecord


def test_dead_letters_keep_the_exact_payload(tmp_path):
    sink = FileDeadLetterSink(tmp_path / "dl.jsonl")
    raw = [b'{"id": "x"', b"\xff\xfe\x80 not utf-8"]
    for i, payload in enumerate(raw):
        sink.send(DeadLetter.of(SourceRecord(payload, i, f"f:{i}"), "parse", f"reason {i}"))
    sink.close()
    letters = read_dead_letters(tmp_path / "dl.jsonl")
    assert [l.original_payload() for l in letters] == raw
    assert [l.payload_encoding for l in letters] == ["utf-8", "base64"]
    assert letters[1].reason == "reason 1" and letters[1].origin == "f:1"
