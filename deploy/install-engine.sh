#!/usr/bin/env bash
# What `make compose-test` needs besides the project: a Docker engine, Compose and
# debootstrap, from Debian's own packages (docker.io 20.10, docker-compose 1.29). Installs
# only what is missing; needs root. Starting dockerd is deploy/compose_test.py's job.
set -euo pipefail
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    if [[ $EUID -ne 0 ]]; then
        echo "install as root: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
