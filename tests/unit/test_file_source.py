import gzip

import pytest

from pipeline.sources.files import FileSource, count_lines


def write(path, lines):
    data = "".join(line + "\n" for line in lines).encode()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def test_reads_plain_and_gzip_and_resumes_after_commit(tmp_path):
    a = write(tmp_path / "a.jsonl", ["1", "", "2", "3"])
    b = write(tmp_path / "b.jsonl.gz", ["4", "5"])
    assert count_lines([a, b]) == 5
    ckpt = tmp_path / "ckpt.json"
    src = FileSource([a, b], checkpoint=ckpt)
    first = src.poll(2)
    assert [r.payload for r in first] == [b"1", b"2"]
    src.commit(first)
    src.poll(2)  # read but never committed: must come again
    src.close()

    again = FileSource([a, b], checkpoint=ckpt)
    rest = []
    while not again.exhausted:
        batch = again.poll(10)
        rest += batch
        again.commit(batch)
    assert [r.payload for r in rest] == [b"3", b"4", b"5"]
    assert FileSource([a, b], checkpoint=ckpt).poll(10) == []


def test_follow_mode_tails_appended_lines(tmp_path):
    log = write(tmp_path / "log.jsonl", ["1"])
    src = FileSource([log], follow=True, poll_interval_s=0.01)
    assert [r.payload for r in src.poll(10)] == [b"1"]
    assert src.poll(10) == [] and not src.exhausted
    with open(log, "ab") as fh:
        fh.write(b"2\n3")  # 3 is half-written
    assert [r.payload for r in src.poll(10)] == [b"2"]
    with open(log, "ab") as fh:
        fh.write(b"4\n")
    assert [r.payload for r in src.poll(10)] == [b"34"]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such post file"):
        FileSource([tmp_path / "nope.jsonl"])
