#!/usr/bin/env bash
# Builds (or reuses) what the real e2e node runs besides Debian's packages: kubelet and kube-proxy
# (the control plane's k8s.io/kubernetes release), CoreDNS with a few plugins, a static pause
# binary, and three one-layer OCI archives (pause, coredns, busybox) for `ctr images import`.
#
# Everything lands in a cache outside the repository, in a directory keyed by the pinned
# versions and a hash of every input, so a warm start only checks a stamp file (the machinery,
# shared with ../cluster/build.sh, is ../lib/gobuild.sh; its header lists the environment).
# Progress goes to stderr; the last line of stdout is the bin directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GOBUILD_NAME=realnode-build
source "$here/../lib/gobuild.sh"

for tool in gcc python3 dpkg-query; do
    command -v "$tool" >/dev/null || die "$tool is not on PATH (run install-deps.sh)"
done
busybox_binary=/bin/busybox
if ! "$busybox_binary" --list >/dev/null 2>&1; then
    die "$busybox_binary is missing (run install-deps.sh)"
fi

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
bin_dir="$gobuild_cache_root/bin/$key"

gobuild_begin "$bin_dir" .realnode-build.lock \
    kubelet kube-proxy coredns pause images/pause.tar images/coredns.tar images/busybox.tar
mkdir -p "$gobuild_staging/images"

go_build "$here/kube" "$(kube_ldflags "$k8s_version")" ./cmd/kubelet ./cmd/kube-proxy
go_build "$here/coredns" "-s -w" .

log "pause (gcc -static)"
gcc -static -Os -s -o "$gobuild_staging/pause" "$here/images/pause.c"

log "images: pause, coredns, busybox (one-layer OCI archives)"
oci() { python3 "$here/images/oci.py" "$@"; }
oci build --name localhost/pause:local --out "$gobuild_staging/images/pause.tar" \
    --entrypoint /pause "$gobuild_staging/pause=/pause"
oci build --name localhost/coredns:local --out "$gobuild_staging/images/coredns.tar" \
    --entrypoint /coredns "$gobuild_staging/coredns=/coredns"
busybox_entries=("$busybox_binary=/bin/busybox")
while read -r applet; do
    [[ "$applet" == busybox ]] || busybox_entries+=("/bin/$applet->busybox")
done < <("$busybox_binary" --list)
oci build --name localhost/busybox:local --out "$gobuild_staging/images/busybox.tar" \
    --dir /tmp --entrypoint /bin/sh "${busybox_entries[@]}"

"$gobuild_staging/kubelet" --version >&2
"$gobuild_staging/kube-proxy" --version >&2
"$gobuild_staging/coredns" -version | head -n 1 >&2

gobuild_finish "$bin_dir"
