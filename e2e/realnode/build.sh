#!/usr/bin/env bash
# Builds (or reuses) what the real e2e node runs besides Debian's packages: kubelet and kube-proxy
# (the control plane's k8s.io/kubernetes release), CoreDNS with a few plugins, a static pause
# binary, and three one-layer OCI archives (pause, coredns, busybox) for `ctr images import`.
#
# Everything lands in a cache outside the repository, in a directory keyed by the pinned
# versions and a hash of every input, so a warm start only checks a stamp file.
# Progress goes to stderr; the last line of stdout is the bin directory.
#
# Environment:
#   COMPOSE_OPERATOR_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/compose-operator)
#   BUILD_JOBS              packages built in parallel (default 2)
#   BUILD_FORCE=1           rebuild even when the stamp file exists
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${COMPOSE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/compose-operator}"
jobs="${BUILD_JOBS:-2}"

log() { printf '%s\n' "$*" >&2; }
die() { log "realnode/build.sh: $*"; exit 1; }

for tool in go gcc python3 dpkg-query; do
    command -v "$tool" >/dev/null || die "$tool is not on PATH (run install-deps.sh)"
done
busybox_binary=/bin/busybox
if ! "$busybox_binary" --list >/dev/null 2>&1; then
    die "$busybox_binary is missing (run install-deps.sh)"
fi

pinned() {
    local gomod="$1" module="$2" version
    version="$(awk -v m="$module" '$1 == m && $2 != "=>" {print $2; exit}
        $1 == "require" && $2 == m {print $3; exit}' "$gomod")"
    [[ -n "$version" ]] || die "$module is not pinned in $gomod"
    printf '%s' "$version"
}

k8s_version="$(pinned "$here/kube/go.mod" k8s.io/kubernetes)"
coredns_version="$(pinned "$here/coredns/go.mod" github.com/coredns/coredns)"
go_version="$(go env GOVERSION)"
busybox_version="$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)"

recipe_version=1
inputs_hash="$(
    {
        printf 'recipe %s\nbusybox %s\ngcc %s\n' "$recipe_version" "$busybox_version" \
            "$(gcc -dumpfullversion)"
        cd "$here"
        find kube coredns images -type f \
            \( -name go.mod -o -name go.sum -o -name '*.go' -o -name '*.c' -o -name '*.py' \) \
            | LC_ALL=C sort | xargs sha256sum
    } | sha256sum | cut -c1-12
)"
key="realnode_k8s-${k8s_version}_coredns-${coredns_version}_${go_version}_${inputs_hash}"
bin_dir="$cache_root/bin/$key"
outputs=(kubelet kube-proxy coredns pause images/pause.tar images/coredns.tar images/busybox.tar)

complete() {
    [[ -f "$bin_dir/.complete" ]] || return 1
    local name
    for name in "${outputs[@]}"; do
        [[ -s "$bin_dir/$name" ]] || return 1
    done
}

if [[ "${BUILD_FORCE:-}" != 1 ]] && complete; then
    log "realnode/build.sh: reusing $bin_dir"
    printf '%s\n' "$bin_dir"
    exit 0
fi

mkdir -p "$cache_root/bin"
exec 9>"$cache_root/bin/.realnode-build.lock"
if ! flock -n 9; then
    log "realnode/build.sh: another build holds the lock; waiting"
    flock 9
fi
if [[ "${BUILD_FORCE:-}" != 1 ]] && complete; then
    log "realnode/build.sh: reusing $bin_dir (built while waiting)"
    printf '%s\n' "$bin_dir"
    exit 0
fi

staging="$bin_dir.partial"
rm -rf "$staging"
mkdir -p "$staging/images"

export CGO_ENABLED=0
GOFLAGS="$(go env GOFLAGS) -mod=readonly -trimpath -buildvcs=false -p=$jobs"
export GOFLAGS="${GOFLAGS# }"

k8s_minor="${k8s_version#v1.}"
k8s_minor="${k8s_minor%%.*}"
kube_ldflags="-s -w"
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kube_ldflags+=" -X $package.gitVersion=$k8s_version -X $package.gitMajor=1"
    kube_ldflags+=" -X $package.gitMinor=$k8s_minor -X $package.gitTreeState=clean"
done

seconds_since() { echo $(($(date +%s) - $1)); }

ticker_pid=""
stop_ticker() {
    if [[ -n "$ticker_pid" ]]; then
        kill "$ticker_pid" 2>/dev/null || true
        wait "$ticker_pid" 2>/dev/null || true
        ticker_pid=""
    fi
}
trap stop_ticker EXIT

build() {
    local name="$1" module_dir="$2" ldflags="$3" package="$4" started
    started="$(date +%s)"
    log "==> $name ($module_dir, $package)"
    (
        while sleep 30; do
            log "    ... $name still building, $(seconds_since "$started") s"
        done
    ) &
    ticker_pid=$!
    (cd "$here/$module_dir" && go build -ldflags "$ldflags" -o "$staging/$name" "$package")
    stop_ticker
    log "    $name built in $(seconds_since "$started") s"
}

total_started="$(date +%s)"
log "realnode/build.sh: building into $bin_dir (go $go_version, GOFLAGS=$GOFLAGS)"
build kubelet kube "$kube_ldflags" ./cmd/kubelet
build kube-proxy kube "$kube_ldflags" ./cmd/kube-proxy
build coredns coredns "-s -w" .

log "==> pause (gcc -static)"
gcc -static -Os -s -o "$staging/pause" "$here/images/pause.c"

log "==> images"
oci() { python3 "$here/images/oci.py" "$@"; }
oci build --name localhost/pause:local --out "$staging/images/pause.tar" \
    --entrypoint /pause "$staging/pause=/pause"
oci build --name localhost/coredns:local --out "$staging/images/coredns.tar" \
    --entrypoint /coredns "$staging/coredns=/coredns"
busybox_entries=("$busybox_binary=/bin/busybox")
while read -r applet; do
    [[ "$applet" == busybox ]] || busybox_entries+=("/bin/$applet->busybox")
done < <("$busybox_binary" --list)
oci build --name localhost/busybox:local --out "$staging/images/busybox.tar" \
    --dir /tmp --entrypoint /bin/sh "${busybox_entries[@]}"

"$staging/kubelet" --version >&2
"$staging/kube-proxy" --version >&2
"$staging/coredns" -version | head -n 1 >&2

touch "$staging/.complete"
rm -rf "$bin_dir"
mv "$staging" "$bin_dir"
log "realnode/build.sh: done in $(seconds_since "$total_started") s: $bin_dir"
printf '%s\n' "$bin_dir"
