#!/usr/bin/env bash
# Installs the Debian packages the tests use, only those missing: docker-registry (a real
# OCI registry for the model puller's tests). Needs root, as on CI and dev machines here.
set -euo pipefail
missing=()
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
((${#missing[@]} == 0)) && exit 0
printf 'installing Debian packages: %s\n' "${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
