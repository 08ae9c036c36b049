#!/usr/bin/env bash
# Prepare this machine to build and run the service image with podman (run as root; idempotent).
#
#   1. apt-get install podman, runc and mmdebstrap (skipped when already installed);
#   2. write a private containers.conf (CONTAINERS_CONF) with the settings this VM needs, leaving
#      /etc/containers alone: runc (crun fails: "cgroups in hybrid mode not supported"), ulimits no
#      higher than the host's hard limits (no CAP_SYS_RESOURCE), cgroupfs, file event logger;
#   3. bootstrap the registry-free base image localhost/ci-debian-base:bookworm unless it exists
#      (.ci/bootstrap-base-image.sh), so a second run on the same machine reuses it.
#
# Usage: source it (`. .ci/setup-podman.sh`) to also export CONTAINERS_CONF into the calling shell,
# or run it and export CONTAINERS_CONF=/var/lib/afrnn-ci/containers.conf yourself.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/podman-env.sh"

missing=()
for pkg in podman runc mmdebstrap; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup-podman: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$(dirname "$CONTAINERS_CONF")"
nofile="$(ulimit -Hn)"
[[ "$nofile" == unlimited ]] && nofile=1048576
nproc="$(ulimit -Hu)"
{ [[ "$nproc" == unlimited ]] || ((nproc > 4096)); } && nproc=4096
cat > "$CONTAINERS_CONF.tmp" <<CONF
# Written by .ci/setup-podman.sh; used through CONTAINERS_CONF, the system config is left alone.
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
mv "$CONTAINERS_CONF.tmp" "$CONTAINERS_CONF"
echo "setup-podman: CONTAINERS_CONF=$CONTAINERS_CONF ($(podman --version))"

"$here/bootstrap-base-image.sh"
