"""The JSON record every benchmark writes under benchmarks/results/."""
from __future__ import annotations

import json
import re
import subprocess

from benchmarks import common


def test_record_names_the_commit_the_run_started_from(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(common, "git_commit", lambda: "a later commit")  # made while the run went on
    path = common.write_result("demo", {"A": [1.0]}, notes="n", module="benchmarks.demo")
    record = json.loads(path.read_text())
    assert record["git_commit"] == common.STARTED_AT_COMMIT != "a later commit"
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", record["git_commit"])
    assert record["metrics"] == {"A": [1.0]} and record["command"].split()[1:3] == ["-m", "benchmarks.demo"]


def test_commit_is_marked_dirty_when_tracked_files_differ(tmp_path):
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    assert common.git_commit(tmp_path) == "unknown"  # not a checkout
    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("commit", "-qm", "first")
    head = git("rev-parse", "HEAD")
    (tmp_path / "notes.txt").write_text("untracked files do not count\n")
    assert common.git_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert common.git_commit(tmp_path) == head + "-dirty"
