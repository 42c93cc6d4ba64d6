#!/usr/bin/env bash
# Builds (or reuses) the binaries of the local e2e cluster from the Go module proxy:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, kwokctl, helm.
#
# Binaries land in a cache outside the repository, in a directory keyed by the pinned versions
# and by a hash of the wrapper modules, so a warm start only checks a stamp file (the machinery,
# shared with ../realnode/build.sh, is ../lib/gobuild.sh; its header lists the environment).
# Progress goes to stderr; the last line of stdout is the bin directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GOBUILD_NAME=cluster-build
source "$here/../lib/gobuild.sh"

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
bin_dir="$gobuild_cache_root/bin/$key"

gobuild_begin "$bin_dir" .build.lock \
    kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl helm

# helm's Makefile derives the default Kubernetes version of `helm template`/`lint` from client-go.
helm_k8s_minor="${helm_client_go#v0.}"
helm_k8s_minor="${helm_k8s_minor%%.*}"
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for package in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    helm_ldflags+=" -X $package.k8sVersionMajor=1 -X $package.k8sVersionMinor=$helm_k8s_minor"
done

go_build "$here/kube" "$(kube_ldflags "$k8s_version")" \
    ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kubectl
go_build "$here/etcd" "-s -w" .
go_build "$here/kwok" "-s -w" sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
go_build "$here/helm" "$helm_ldflags" helm.sh/helm/v3/cmd/helm

"$gobuild_staging/kube-apiserver" --version >&2
"$gobuild_staging/etcd" --version | head -n1 >&2
"$gobuild_staging/kwokctl" --version >&2
"$gobuild_staging/helm" version --short >&2

gobuild_finish "$bin_dir"
