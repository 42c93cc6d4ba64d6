#!/usr/bin/env bash
# Installs the Debian packages the real e2e node needs, and any packages named as arguments
# (the Makefile adds what the image builds need, so one apt-get run serves both), skipping
# those already present. Runs `apt-get update` at most once, and only when something is missing.
#
#   containerd (1.6: its CRI sets no rlimits, which this machine cannot raise), runc,
#   containernetworking-plugins (bridge, host-local, portmap, loopback), iptables, conntrack,
#   docker-registry (the local registry the kubelet pulls from), podman (image builds),
#   gcc + libc6-dev (the static pause binary), busybox-static (the tiny test image), iproute2,
#   socat (forwards the node address to the API server, which listens on 127.0.0.1 only),
#   curl (readiness checks).
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables conntrack docker-registry podman
    gcc libc6-dev busybox-static iproute2 socat curl "$@")

log() { printf 'install-deps.sh: %s\n' "$*" >&2; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

missing=()
for package in "${packages[@]}"; do
    if installed "$package"; then
        log "present: $package ($(dpkg-query -W -f='${Version}' "$package"))"
    else
        missing+=("$package")
    fi
done

if ((${#missing[@]} == 0)); then
    log "nothing to install"
    exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
    log "missing ${missing[*]}; run as root to install them"
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
apt-get update -qq
log "apt-get install ${missing[*]}"
# Recommends would pull in extras (e.g. criu, slirp); the node needs none of them.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
for package in "${missing[@]}"; do
    log "installed: $package ($(dpkg-query -W -f='${Version}' "$package"))"
done
