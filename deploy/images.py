"""Build every image of the production stack locally, from nothing but Debian and PyPI.

    python -m deploy.images                      # all five images, tagged mkg/<name>:latest
    python -m deploy.images --only worker airflow --tag dev
    python -m deploy.images --base-image debian:bookworm-slim   # where a registry is reachable

Why a script and not ``docker compose build``: the build machines reach no image registry,
so the base is made here (debootstrap + ``docker import``, deploy/base/build.sh), and the
Kafka and Neo4j images get the very jars ``mkg services`` resolves from Maven Central,
staged into their build contexts; Compose v1 (Debian's docker-compose) cannot pass build
secrets either. The compose file names the images this script tags, so a registry user
pushes them (or their own builds) and sets MKG_IMAGE_PREFIX instead.

A CA bundle for pip (a corporate proxy, this sandbox) is an optional BuildKit secret: it is
read during the build and is in no layer. ``--pip-cert`` defaults to ``$PIP_CERT``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DEFAULT_BASE = "mkg/debian:bookworm"
DEFAULT_PREFIX = "mkg/"
IMAGES = ("kafka", "neo4j", "postgres", "worker", "airflow")

log = logging.getLogger("mkg.deploy.images")


@dataclass(frozen=True)
class ImageSpec:
    """One image: its build context, Dockerfile and (for the app images) target stage."""

    name: str
    context: Path
    dockerfile: Path
    target: str | None = None


def docker_cli() -> list[str]:
    """A docker command that builds with BuildKit (secrets, cache mounts).

    ``docker buildx`` where the plugin exists; otherwise a 20.10 engine's own client
    (Debian's docker.io, /usr/bin/docker) has BuildKit built in behind DOCKER_BUILDKIT=1.
    ``MKG_DOCKER`` names the binary outright.
    """
    explicit = os.environ.get("MKG_DOCKER")
    if explicit:
        return [explicit]
    for candidate in [shutil.which("docker"), "/usr/bin/docker"]:
        if not candidate or not Path(candidate).exists():
            continue
        if subprocess.run([candidate, "buildx", "version"], capture_output=True).returncode == 0:
            return [candidate, "buildx"]
        version = subprocess.run([candidate, "version", "--format", "{{.Client.Version}}"],
                                 capture_output=True, text=True).stdout.strip()
        if version and int(version.split(".")[0]) < 23:  # before 23 the classic client built with BuildKit itself
            return [candidate]
    raise RuntimeError("no docker client that builds with BuildKit: install the buildx plugin "
                       "or Debian's docker.io (its /usr/bin/docker), or set MKG_DOCKER")


def stage_java_context(name: str, build_dir: Path) -> Path:
    """Copy deploy/<name>/ and the jars `mkg services` resolved into a fresh build context."""
    from pipeline.services.base import default_cache_dir
    from pipeline.services.manager import all_services

    cache = default_cache_dir()
    all_services()[name].resolve(cache)  # Maven Central, once; a no-op when the cache is current
    context = build_dir / name
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(DEPLOY / name, context)
    shutil.copytree(cache / name / "lib", context / "lib")
    if name == "kafka":
        from pipeline.services.kafka import LOG4J2

        (context / "log4j2.properties").write_text(LOG4J2)
    if name == "neo4j":
        from pipeline.services.neo4j import JVM_FLAGS

        launcher = resources.files("pipeline.services").joinpath("java/MkgNeo4j.java")
        (context / "MkgNeo4j.java").write_bytes(launcher.read_bytes())
        (context / "jvm.flags").write_text("".join(flag + "\n" for flag in JVM_FLAGS))
    return context


def image_specs(names: list[str], build_dir: Path) -> list[ImageSpec]:
    specs = []
    for name in names:
        if name in ("kafka", "neo4j"):
            context = stage_java_context(name, build_dir)
            specs.append(ImageSpec(name, context, context / "Dockerfile"))
        elif name == "postgres":
            specs.append(ImageSpec(name, DEPLOY / "postgres", DEPLOY / "postgres" / "Dockerfile"))
        else:  # the app images: the repository is the context (.dockerignore keeps it small)
            specs.append(ImageSpec(name, ROOT, ROOT / "Dockerfile", target=name))
    return specs


def ensure_base(base_image: str) -> None:
    """Build our debootstrap base when it is the one asked for and is missing."""
    if base_image != DEFAULT_BASE:
        return
    subprocess.run(["bash", str(DEPLOY / "base" / "build.sh"), base_image], check=True)


def build(spec: ImageSpec, tag: str, base_image: str, pip_cert: str | None, docker: list[str],
          log_path: Path) -> float:
    """Build one image, its output going to ``log_path``; return the seconds it took."""
    cmd = [*docker, "build", "--progress=plain", "-f", str(spec.dockerfile), "-t", tag,
           "--build-arg", f"BASE_IMAGE={base_image}"]
    if spec.target:
        cmd += ["--target", spec.target]
    if pip_cert:
        cmd += ["--secret", f"id=pip_cert,src={pip_cert}"]
    cmd.append(str(spec.context))
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log.info("building %s (log: %s)", tag, log_path)
    start = time.monotonic()
    with open(log_path, "w") as out:
        code = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - start
    if code != 0:
        raise RuntimeError(f"building {tag} failed ({code}):\n{log_path.read_text()[-6000:]}")
    log.info("built %s in %.0f s", tag, seconds)
    return seconds


def build_images(names: list[str] | None = None, tag: str = "latest", prefix: str = DEFAULT_PREFIX,
                 base_image: str = DEFAULT_BASE, pip_cert: str | None = None,
                 build_dir: Path | None = None) -> dict[str, float]:
    """Build ``names`` (default: all) and return seconds per image, base included.

    ``pip_cert`` None means ``$PIP_CERT`` (the CA bundle pip on this machine uses), if set.
    """
    names = list(names or IMAGES)
    pip_cert = pip_cert or os.environ.get("PIP_CERT") or None
    unknown = set(names) - set(IMAGES)
    if unknown:
        raise ValueError(f"unknown images {sorted(unknown)}; choose from {list(IMAGES)}")
    docker = docker_cli()
    seconds: dict[str, float] = {}
    start = time.monotonic()
    ensure_base(base_image)
    seconds["base"] = time.monotonic() - start
    build_dir = Path(build_dir or ROOT / "build" / "docker")
    for spec in image_specs(names, build_dir):
        seconds[spec.name] = build(spec, f"{prefix}{spec.name}:{tag}", base_image, pip_cert, docker,
                                   build_dir / f"{spec.name}.log")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.images", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--only", nargs="+", choices=IMAGES, help="build these images only (default: all)")
    parser.add_argument("--tag", default="latest", help="image tag (default: latest)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="repository prefix (default: mkg/)")
    parser.add_argument("--base-image", default=DEFAULT_BASE,
                        help=f"Debian bookworm base (default {DEFAULT_BASE}, built here with debootstrap)")
    parser.add_argument("--pip-cert",
                        help="CA bundle for pip, passed as a build secret (default: $PIP_CERT)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    seconds = build_images(args.only, args.tag, args.prefix, args.base_image, args.pip_cert)
    print(json.dumps({name: round(s, 1) for name, s in seconds.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
