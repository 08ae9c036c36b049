#!/usr/bin/env bash
# Build the registry-free CI base image (Debian 12 "bookworm", Python 3.11 from apt) unless it exists.
#
# No registry is reachable here, so nvidia/cuda and python images cannot be pulled. mmdebstrap builds
# a root filesystem from Debian's package mirror and `podman import` turns it into an image. HTTPS
# goes through an intercepting proxy: the host's extra CA certificates are copied in and registered,
# so that pip inside RUN steps trusts it (only this stand-in base needs them, not production).
# Takes about a minute; the image stays in podman's store as the cache for later runs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/podman-env.sh"

if podman image exists "$AFRNN_CI_BASE_IMAGE"; then
    echo "bootstrap-base-image: $AFRNN_CI_BASE_IMAGE already present"
    exit 0
fi
command -v mmdebstrap >/dev/null || { echo "bootstrap-base-image: mmdebstrap missing (run .ci/setup-podman.sh)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
shopt -s nullglob
cas=(/usr/local/share/ca-certificates/*.crt)
hooks=()
if ((${#cas[@]})); then
    mkdir -p "$work/ca"
    cp "${cas[@]}" "$work/ca/"
    hooks+=(--customize-hook="cp $work/ca/*.crt \"\$1/usr/local/share/ca-certificates/\""
            --customize-hook='chroot "$1" update-ca-certificates')
fi
# Leave no apt lists or caches in the image (the Dockerfile runs apt-get update itself).
hooks+=(--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*')

start=$SECONDS
mmdebstrap --quiet --variant=apt --include=ca-certificates "${hooks[@]}" bookworm "$work/rootfs.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
podman import --quiet "$work/rootfs.tar" "$AFRNN_CI_BASE_IMAGE" >/dev/null
echo "bootstrap-base-image: built $AFRNN_CI_BASE_IMAGE in $((SECONDS - start)) s"
