"""Versioned artifacts published in one step: the one way every publisher writes a version.

Layout, for any kind of artifact (extractor versions, completion models, the
shipped copies, zero-shot scorers)::

    <versions>/<version>/...      one folder per version, complete or absent
    <versions>/.<version>.*.tmp   a version being written (or left by a crash): hidden, never listed
    <pointer>                     a one-line file naming the current version

A version is written into a hidden temporary folder beside its final place;
every file in it and the folder itself are fsynced; one ``os.replace`` renames
it to the version's name; the parent folder is fsynced so the rename itself is
durable. A reader that lists only non-hidden folders therefore sees no version
or a complete one, after a kill or a power cut at any point. The pointer is
switched the same way (hidden temporary file, fsync, one rename, fsync of the
folder), after the version it names is published.

No project imports: the extractor store, the completion store, shipping and
the zero-shot scorer all build on this.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):  # files before the folders holding them
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        elif path.is_dir():
            fsync_dir(path)
    fsync_dir(root)


def is_hidden(name: str) -> bool:
    """A name no reader lists: a version still being written, or one a crash left half-written."""
    return name.startswith(".")


@contextmanager
def publishing(versions: Path, version: str) -> Iterator[Path]:
    """Write a version's files into the yielded hidden folder; on a clean exit it becomes
    ``versions/version`` in one rename (durable); on an exception it is removed and nothing is
    published."""
    if not version or is_hidden(version) or "/" in version or os.sep in version:
        raise ValueError(f"not a version name: {version!r}")
    versions = Path(versions)
    versions.mkdir(parents=True, exist_ok=True)
    final = versions / version
    if final.exists():
        raise FileExistsError(f"version {version} is already published in {versions}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".tmp", dir=versions))
    tmp.chmod(0o755)  # mkdtemp's 0700 would follow the version after the rename
    try:
        yield tmp
        _fsync_tree(tmp)
        os.replace(tmp, final)  # the one step that publishes the version, with all its files
        fsync_dir(versions)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def published(versions: Path, marker: str = "config.json") -> list[str]:
    """The published versions in ``versions`` (sorted): visible folders holding ``marker``."""
    versions = Path(versions)
    if not versions.exists():
        return []
    return sorted(p.name for p in versions.iterdir() if not is_hidden(p.name) and (p / marker).exists())


def replace_file(path: Path, text: str) -> None:
    """``path`` now holds ``text``, or still its old content after a crash: never half of either."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def point_to(pointer: Path, version: str) -> None:
    """Switch the ``current`` pointer file to ``version`` in one durable rename."""
    replace_file(pointer, version + "\n")


def read_pointer(pointer: Path) -> str | None:
    pointer = Path(pointer)
    return (pointer.read_text(encoding="utf-8").strip() or None) if pointer.exists() else None
