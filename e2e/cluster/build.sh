#!/usr/bin/env bash
# Builds (or reuses) the binaries of the local e2e cluster from the Go module proxy:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, kwokctl, helm.
#
# Binaries land in a cache outside the repository, in a directory keyed by the pinned versions
# and by a hash of the wrapper modules, so a warm start only checks a stamp file.
# Progress goes to stderr; the last line of stdout is the bin directory.
#
# Environment:
#   COMPOSE_OPERATOR_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/compose-operator)
#   BUILD_JOBS              packages built in parallel (default 2; the Go default is one per core,
#                           which on small machines trades little speed for a lot of memory)
#   BUILD_FORCE=1           rebuild even when the stamp file exists
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${COMPOSE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/compose-operator}"
jobs="${BUILD_JOBS:-2}"

log() { printf '%s\n' "$*" >&2; }
die() { log "build.sh: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH"

# The pinned version of a module, read from the require lines of a wrapper go.mod.
pinned() {
    local gomod="$1" module="$2" version
    version="$(awk -v m="$module" '$1 == m && $2 != "=>" {print $2; exit}
        $1 == "require" && $2 == m {print $3; exit}' "$gomod")"
    [[ -n "$version" ]] || die "$module is not pinned in $gomod"
    printf '%s' "$version"
}

k8s_version="$(pinned "$here/kube/go.mod" k8s.io/kubernetes)"
etcd_version="$(pinned "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)"
kwok_version="$(pinned "$here/kwok/go.mod" sigs.k8s.io/kwok)"
helm_version="$(pinned "$here/helm/go.mod" helm.sh/helm/v3)"
helm_client_go="$(pinned "$here/helm/go.mod" k8s.io/client-go)"
go_version="$(go env GOVERSION)"

# Everything that changes the binaries: wrapper sources and the link flags defined below.
recipe_version=1
inputs_hash="$(
    {
        printf 'recipe %s\n' "$recipe_version"
        cd "$here"
        find kube etcd kwok helm -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) \
            | LC_ALL=C sort | xargs sha256sum
    } | sha256sum | cut -c1-12
)"
key="k8s-${k8s_version}_etcd-${etcd_version}_kwok-${kwok_version}_helm-${helm_version}_${go_version}_${inputs_hash}"
bin_dir="$cache_root/bin/$key"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl helm)

complete() {
    [[ -f "$bin_dir/.complete" ]] || return 1
    local name
    for name in "${binaries[@]}"; do
        [[ -x "$bin_dir/$name" ]] || return 1
    done
}

if [[ "${BUILD_FORCE:-}" != 1 ]] && complete; then
    log "build.sh: reusing $bin_dir"
    printf '%s\n' "$bin_dir"
    exit 0
fi

mkdir -p "$cache_root/bin"
exec 9>"$cache_root/bin/.build.lock"
if ! flock -n 9; then
    log "build.sh: another build holds $cache_root/bin/.build.lock; waiting"
    flock 9
fi
if [[ "${BUILD_FORCE:-}" != 1 ]] && complete; then
    log "build.sh: reusing $bin_dir (built while waiting)"
    printf '%s\n' "$bin_dir"
    exit 0
fi

staging="$bin_dir.partial"
rm -rf "$staging"
mkdir -p "$staging"

export CGO_ENABLED=0
# Keep flags set with `go env -w`; -buildvcs=false because the wrappers live inside this repository
# and its git state must not change the binaries.
GOFLAGS="$(go env GOFLAGS) -mod=readonly -trimpath -buildvcs=false -p=$jobs"
export GOFLAGS="${GOFLAGS# }"

k8s_minor="${k8s_version#v1.}"
k8s_minor="${k8s_minor%%.*}"
kube_ldflags="-s -w"
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kube_ldflags+=" -X $package.gitVersion=$k8s_version -X $package.gitMajor=1"
    kube_ldflags+=" -X $package.gitMinor=$k8s_minor -X $package.gitTreeState=clean"
done
# helm's Makefile derives the default Kubernetes version of `helm template`/`lint` from client-go.
helm_k8s_minor="${helm_client_go#v0.}"
helm_k8s_minor="${helm_k8s_minor%%.*}"
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for package in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    helm_ldflags+=" -X $package.k8sVersionMajor=1 -X $package.k8sVersionMinor=$helm_k8s_minor"
done

seconds_since() { echo $(($(date +%s) - $1)); }
format_duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# go build prints nothing for minutes on a cold cache; say what is running every 30 s.
# (The ticker sleeps 1 s at a time so that stopping it leaves no sleep process behind.)
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
        while sleep 1; do
            elapsed="$(seconds_since "$started")"
            if ((elapsed % 30 == 0)); then
                log "    ... $name still building, $(format_duration "$elapsed")"
            fi
        done
    ) &
    ticker_pid=$!
    (cd "$here/$module_dir" && go build -ldflags "$ldflags" -o "$staging/$name" "$package")
    stop_ticker
    log "    $name built in $(format_duration "$(seconds_since "$started")")"
}

total_started="$(date +%s)"
log "build.sh: building into $bin_dir (go $go_version, GOFLAGS=$GOFLAGS)"
build kube-apiserver kube "$kube_ldflags" ./cmd/kube-apiserver
build kube-controller-manager kube "$kube_ldflags" ./cmd/kube-controller-manager
build kube-scheduler kube "$kube_ldflags" ./cmd/kube-scheduler
build kubectl kube "$kube_ldflags" ./cmd/kubectl
build etcd etcd "-s -w" .
build kwok kwok "-s -w" sigs.k8s.io/kwok/cmd/kwok
build kwokctl kwok "-s -w" sigs.k8s.io/kwok/cmd/kwokctl
build helm helm "$helm_ldflags" helm.sh/helm/v3/cmd/helm

"$staging/kube-apiserver" --version >&2
"$staging/etcd" --version | head -n1 >&2
"$staging/kwokctl" --version >&2
"$staging/helm" version --short >&2

touch "$staging/.complete"
rm -rf "$bin_dir"
mv "$staging" "$bin_dir"
log "build.sh: all binaries built in $(format_duration "$(seconds_since "$total_started")")"
printf '%s\n' "$bin_dir"
