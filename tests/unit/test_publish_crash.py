"""Publishing a model version under a crash: no new version, or a complete one.

A continual update publishes weights, config, metrics, the rehearsal memory
and the continual record of a version, then moves ``current`` to it. The
test runs that publication (:func:`continual.update.publish`) in a child
process whose file-system calls are counted by wrappers installed in the
child only; the child kills itself (``os._exit``, no cleanup, like kill -9)
at call k, for every k, after writing half of the file it was writing. After
each crash the store must show the old version alone, or the new version
complete; ``current`` must name a complete version.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path


CHILD = textwrap.dedent('''
    import json, os, pathlib, sys

    import torch
    from torch import nn

    from continual.memory import RehearsalMemory
    from continual.methods import LearnerState
    from continual.update import publish, version_files
    from extractors.datasets import REExample
    from extractors.encoders import EncoderSpec
    from extractors.store import ModelStore

    root, crash_at, fingerprint, task_id = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


    class Encoder(nn.Module):  # what the store reads of an encoder, without loading one
        n_interact, max_text_len, shared_key_mode, lora = 1, 32, "shared", None


    class Head(nn.Module):
        gate = None


    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.head, self.classifier = Encoder(), Head(), nn.Linear(4, 2)
            self.labels = ["None", "/per/per/peer"]


    peer = REExample(("Ann", "met", "Bob"), (0, 1), (2, 3), "/per/per/peer")
    memory = RehearsalMemory("mre", per_class=2)
    memory.add_task(0, ["/per/per/peer"], [peer])
    files = version_files(LearnerState(0, ["/per/per/peer"], memory, {"text": 1.0}, {"/per/per/peer": 1}),
                          task_id, ["/per/per/peer"])

    calls = 0


    def step(partial=None):
        global calls
        if calls == crash_at:
            if partial is not None:
                partial()
            os._exit(17)  # no cleanup, no finally: as a kill -9 would leave it
        calls += 1


    def wrap(owner, name, half=None):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            step((lambda: half(real, *args, **kwargs)) if half is not None else None)
            return real(*args, **kwargs)

        setattr(owner, name, wrapper)


    def half_text(real, path, data, *a, **k):
        real(path, data[: len(data) // 2], *a, **k)


    import safetensors.torch

    wrap(os, "replace")
    wrap(os, "rename")
    wrap(os, "mkdir")
    wrap(os, "chmod")
    wrap(pathlib.Path, "write_text", half_text)
    wrap(pathlib.Path, "write_bytes", half_text)
    wrap(safetensors.torch, "save_file")
    torch.manual_seed(0)
    version = publish(ModelStore(root), "mre", Model(), EncoderSpec(), metrics={"A": 50.0}, fingerprint=fingerprint,
                      train_config={"task": task_id}, parent=None, files=files, promote=True)
    print(json.dumps({"calls": calls, "version": version}))
''')


def run_child(root: Path, crash_at: int, fingerprint: str, task_id: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", CHILD, str(root), str(crash_at), fingerprint, task_id],
                          capture_output=True, text=True, timeout=300, env=env)


def assert_complete(store, version: str, task_id: str) -> None:
    """Every file of a continual version is there and whole."""
    from safetensors.torch import load_file

    from continual.memory import RehearsalMemory

    folder = store.version_dir("mre", version)
    assert store.config("mre", version)["version"] == version
    assert store.config("mre", version)["labels"] == ["None", "/per/per/peer"]
    assert set(load_file(str(folder / "weights.safetensors"))) == {"classifier.weight", "classifier.bias"}
    assert store.metrics("mre", version) == {"A": 50.0}
    assert RehearsalMemory.load(folder).counts() == {"/per/per/peer": 1}
    assert json.loads((folder / "continual.json").read_text())["task_id"] == task_id


def test_a_crash_at_any_step_of_publishing_leaves_no_version_or_a_complete_one(tmp_path):
    from extractors.store import ModelStore

    base = tmp_path / "base"
    first = run_child(base, -1, "b" * 64, "task-base")  # the version being served when the update runs
    assert first.returncode == 0, first.stderr
    base_version = json.loads(first.stdout)["version"]
    shutil.copytree(base, tmp_path / "count")  # count the steps on the store the crashes start from
    full = run_child(tmp_path / "count", -1, "c" * 64, "task-new")
    assert full.returncode == 0, full.stderr
    steps = json.loads(full.stdout)["calls"]
    assert steps >= 8  # mkdir, chmod, weights, config, metrics, memory, continual record, rename, pointer, ...

    outcomes = {}
    for k in range(steps + 1):  # k == steps: the child runs to the end
        root = tmp_path / f"crash-{k}"
        shutil.copytree(base, root)
        proc = run_child(root, k, "c" * 64, "task-new")
        assert proc.returncode == (0 if k == steps else 17), proc.stderr
        store = ModelStore(root)
        versions = store.versions("mre")
        new = [v for v in versions if v != base_version]
        assert base_version in versions and len(new) <= 1, (k, versions)
        assert_complete(store, base_version, "task-base")
        if new:
            assert_complete(store, new[0], "task-new")
        current = store.current_version("mre")
        assert current in versions, (k, current)
        outcomes[k] = "promoted" if new and current == new[0] else "saved" if new else "none"
    # the kills landed on each side of both publishing steps: before the version, between, after the pointer
    assert set(outcomes.values()) == {"none", "saved", "promoted"}, outcomes
    assert outcomes[steps] == "promoted"
