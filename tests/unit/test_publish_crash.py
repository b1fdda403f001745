"""Publishing a versioned artifact under a crash: no new version, or a complete one, for every publisher.

Every publisher goes through :mod:`mkg_common.artifacts`: the extractor store
(here a continual update: weights, config, metrics, the rehearsal memory and
the continual record, then ``current``), the completion store, shipping a
version into the package folder, and the zero-shot scorer. Each test runs one
publication in a child process whose file-system calls are counted by
wrappers installed in the child only; the child kills itself (``os._exit``,
no cleanup, like kill -9) at call k, for every k, after writing half of the
file it was writing. After each crash the reader must list the old version
alone, or the new version complete, and ``current`` must name a complete
listed version.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

# Counts file-system calls in the child and dies at call ``crash_at`` (after half a write).
PRELUDE = textwrap.dedent('''
    import json, os, pathlib, shutil, sys

    import torch
    from torch import nn

    root, crash_at, fingerprint, tag = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
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


    def half_copy(real, src, dst, *a, **k):
        data = pathlib.Path(src).read_bytes()
        target = pathlib.Path(dst) / pathlib.Path(src).name if pathlib.Path(dst).is_dir() else pathlib.Path(dst)
        with open(target, "wb") as fh:
            fh.write(data[: len(data) // 2])


    def install_wrappers():
        import safetensors.torch

        wrap(os, "replace")
        wrap(os, "rename")
        wrap(os, "mkdir")
        wrap(os, "chmod")
        wrap(pathlib.Path, "write_text", half_text)
        wrap(pathlib.Path, "write_bytes", half_text)
        wrap(safetensors.torch, "save_file")
        wrap(shutil, "copy2", half_copy)
        wrap(shutil, "rmtree")
''')

PUBLISHERS = {
    # continual.update.publish: an extractor version with its rehearsal memory and continual record
    "extractor": '''
    from continual.memory import RehearsalMemory
    from continual.methods import LearnerState
    from continual.update import publish, version_files
    from extractors.datasets import REExample
    from extractors.encoders import EncoderSpec
    from extractors.store import ModelStore


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
                          tag, ["/per/per/peer"])
    install_wrappers()
    torch.manual_seed(0)
    version = publish(ModelStore(root), "mre", Model(), EncoderSpec(), metrics={"A": 50.0}, fingerprint=fingerprint,
                      train_config={"task": tag}, parent=None, files=files, promote=True)
    ''',
    # graph_store.completion: a completion model, its vocabulary and reranker
    "completion": '''
    from extractors.store import ModelStore
    from graph_store.completion.model import CompletionModel, ModelConfig
    from graph_store.completion.versions import CompletionStore

    torch.manual_seed(0)
    model = CompletionModel(ModelConfig(text_dim=4, rank=2, hidden=4), 3, 2)
    install_wrappers()
    version = CompletionStore(ModelStore(root, kinds=("completion",))).save_model(
        model, entities=["PER:a", "PER:b", tag], relations=["PEER", "COUPLE"], metrics={"A": 1.0},
        train_config={"task": tag}, fingerprint=fingerprint, parent=None, promote=True)
    ''',
    # extractors.ship.install: a version copied into the shipped folder, the one it replaces removed
    "shipping": '''
    from safetensors.torch import save_file

    from extractors.ship import install
    from extractors.store import ModelStore

    version = "mre-" + fingerprint[:8]
    src = root.parent / (root.name + "-source") / "mre" / "versions" / version
    src.mkdir(parents=True)
    save_file({"w": torch.full((64,), 3.0)}, str(src / "weights.safetensors"))
    (src / "config.json").write_text(json.dumps({"version": version, "format": "adapter", "task": tag}))
    (src / "metrics.json").write_text(json.dumps({"A": 1.0}))
    install_wrappers()
    install("mre", ModelStore(src.parents[2]), version, dest=root)
    ''',
    # extractors.zero_shot.model.ZeroShotModel.save: a scorer version and the current pointer
    "zero_shot": '''
    from extractors.zero_shot.model import ZeroShotModel
    from extractors.zero_shot.scorer import ScorerConfig, ZeroShotScorer

    torch.manual_seed(0)
    version = "zs-" + fingerprint[:8]
    model = ZeroShotModel(ZeroShotScorer(ScorerConfig(text_dim=8, vision_dim=8, token_dim=4)), version, 0.5,
                          trained_on=[tag], encoder=object())
    install_wrappers()
    model.save(root, {"calibration": {"precision": 0.5}, "task": tag})
    ''',
}


def run_child(kind: str, root: Path, crash_at: int, fingerprint: str, tag: str) -> subprocess.CompletedProcess:
    code = PRELUDE + textwrap.dedent(PUBLISHERS[kind]) + '\nprint(json.dumps({"calls": calls}))\n'
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code, str(root), str(crash_at), fingerprint, tag],
                          capture_output=True, text=True, timeout=300, env=env)


def listed(kind: str, root: Path) -> tuple[dict[str, str], str | None]:
    """What a reader sees: {version: the tag it was published with} for every listed version (each
    checked whole: every file present and readable), and the version ``current`` names."""
    from safetensors.torch import load_file

    from extractors.store import ModelStore

    if kind == "zero_shot":
        from mkg_common.artifacts import published, read_pointer

        out = {}
        for v in published(root / "versions"):
            folder = root / "versions" / v
            cfg = json.loads((folder / "config.json").read_text())
            assert cfg["version"] == v and set(load_file(str(folder / "weights.safetensors")))
            out[v] = json.loads((folder / "metrics.json").read_text())["task"]
        return out, read_pointer(root / "current")
    name = {"extractor": "mre", "shipping": "mre", "completion": "completion"}[kind]
    store = ModelStore(root, kinds=("completion",)) if kind == "completion" else ModelStore(root)
    out = {}
    for v in store.versions(name):
        folder = store.version_dir(name, v)
        assert store.config(name, v)["version"] == v
        weights = load_file(str(folder / "weights.safetensors"))
        if kind == "extractor":
            from continual.memory import RehearsalMemory

            assert set(weights) == {"classifier.weight", "classifier.bias"} and store.metrics(name, v) == {"A": 50.0}
            assert RehearsalMemory.load(folder).counts() == {"/per/per/peer": 1}
            out[v] = json.loads((folder / "continual.json").read_text())["task_id"]
        elif kind == "completion":
            from graph_store.completion.versions import CompletionStore

            model, cfg, vocab = CompletionStore(store).load_model(v)
            out[v] = vocab["entities"][-1]
        else:
            assert weights["w"].sum().item() == 3.0 * 64 and store.metrics(name, v) == {"A": 1.0}
            out[v] = store.config(name, v)["task"]
    return out, store.current_version(name)


@pytest.mark.parametrize("kind", list(PUBLISHERS))
def test_a_crash_at_any_step_of_publishing_leaves_no_version_or_a_complete_one(tmp_path, kind):
    base = tmp_path / "base"
    first = run_child(kind, base, -1, "b" * 64, "base")  # the version being served when the new one comes
    assert first.returncode == 0, first.stderr
    (base_version, tag), = listed(kind, base)[0].items()
    assert tag == "base"
    shutil.copytree(base, tmp_path / "count")  # count the steps on the store the crashes start from
    full = run_child(kind, tmp_path / "count", -1, "c" * 64, "new")
    assert full.returncode == 0, full.stderr
    steps = json.loads(full.stdout)["calls"]
    assert steps >= 4  # at least: the hidden folder, a file, the rename, the pointer

    def crash_at(k: int) -> subprocess.CompletedProcess:
        root = tmp_path / f"crash-{k}"
        shutil.copytree(base, root)
        return run_child(kind, root, k, "c" * 64, "new")

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # the children are independent
        procs = list(pool.map(crash_at, range(steps + 1)))  # k == steps: the child runs to the end
    outcomes = {}
    for k, proc in enumerate(procs):
        root = tmp_path / f"crash-{k}"
        assert proc.returncode == (0 if k == steps else 17), proc.stderr
        versions, current = listed(kind, root)  # every listed version is whole (checked in listed)
        new = [v for v, t in versions.items() if t == "new"]
        assert len(new) <= 1 and len(versions) <= 2, (k, versions)
        assert current in versions, (k, current, versions)
        if kind != "shipping":  # shipping removes the version it replaced, once the new one is current
            assert versions.get(base_version) == "base", (k, versions)
        outcomes[k] = "promoted" if new and current == new[0] else "saved" if new else "none"
    # the kills landed on each side of both publishing steps: before the version, between, after the pointer
    assert set(outcomes.values()) == {"none", "saved", "promoted"}, outcomes
    assert outcomes[steps] == "promoted"
