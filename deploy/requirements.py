"""Print pyproject.toml's pinned requirements, for the image's dependency layer.

The Dockerfile installs dependencies from ``pyproject.toml`` alone, before any source
is copied, so editing code rebuilds only the thin source layer (the dependency layer
holds torch and is ~6 GB). ``--extra airflow`` prints that optional group instead.
Run with the image's python: stdlib only.
"""
from __future__ import annotations

import argparse
import sys
import tomllib


def requirements(pyproject: str, extra: str | None) -> list[str]:
    with open(pyproject, "rb") as fh:
        project = tomllib.load(fh)["project"]
    if extra is None:
        return list(project["dependencies"])
    groups = project.get("optional-dependencies", {})
    if extra not in groups:
        raise SystemExit(f"no optional group {extra!r} in {pyproject}")
    return list(groups[extra])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", help="path of pyproject.toml")
    parser.add_argument("--extra", help="print this optional-dependencies group instead of the core ones")
    args = parser.parse_args(argv)
    sys.stdout.write("".join(req + "\n" for req in requirements(args.pyproject, args.extra)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
