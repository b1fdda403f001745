#!/usr/bin/env bash
# The base every mkg image starts from: a minimal Debian bookworm root made with
# debootstrap and loaded with `docker import`. Building our own base means no image is
# ever pulled from a registry (none is reachable on the build machines); a user with a
# registry can pass BASE_IMAGE=debian:bookworm-slim to deploy/images.py instead.
#
#   deploy/base/build.sh [TAG]        (default mkg/debian:bookworm; a no-op if it exists)
#
# Needs root (debootstrap) and a running Docker engine. MIRROR overrides the Debian mirror.
set -euo pipefail
TAG="${1:-mkg/debian:bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG exists"
    exit 0
fi
ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/mkg-rootfs.XXXXXX")"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR"
# what the official slim images do: no apt caches or lists in the layer, no docs
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/*
cat > "$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
CONF
tar -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$TAG"
echo "built base image $TAG"
