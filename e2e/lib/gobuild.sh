# shellcheck shell=bash
# The Go build machinery of e2e/cluster/build.sh and e2e/realnode/build.sh; sourced, never run.
#
# A build lands in ${COMPOSE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/compose-operator}/bin/<key>/,
# the key naming the pinned versions and a hash of the inputs, so a warm start only checks a
# stamp file. A lock serialises concurrent builds of the same script, and a build lands in
# <key>.partial until every output is there. Each `go build` compiles all the commands of one
# wrapper module at once (the linker runs for several binaries in parallel) and says every 30 s
# what it is compiling, so a cold build never looks stuck.
#
# The sourcing script sets GOBUILD_NAME (its name in progress lines). Environment:
#   COMPOSE_OPERATOR_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/compose-operator)
#   BUILD_JOBS              packages built in parallel (default 2; the Go default is one per core,
#                           which on small machines trades little speed for a lot of memory)
#   BUILD_FORCE=1           rebuild even when the stamp file exists

gobuild_cache_root="${COMPOSE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/compose-operator}"
gobuild_jobs="${BUILD_JOBS:-2}"
gobuild_started=$SECONDS
gobuild_ticker_pid=""
gobuild_staging=""

format_duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

log() { printf '[%s %s] %s\n' "$GOBUILD_NAME" "$(format_duration $((SECONDS - gobuild_started)))" "$*" >&2; }

die() { log "error: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH"

# The pinned version of a module, read from the require lines of a wrapper go.mod.
pinned() {
    local gomod="$1" module="$2" version
    version="$(awk -v m="$module" '$1 == m && $2 != "=>" {print $2; exit}
        $1 == "require" && $2 == m {print $3; exit}' "$gomod")"
    [[ -n "$version" ]] || die "$module is not pinned in $gomod"
    printf '%s' "$version"
}

# -ldflags for k8s.io/kubernetes commands: stripped, and the version stamps its Makefile sets
# (`kubectl version`, `/version` and the kubelet report the release, not v0.0.0).
kube_ldflags() {
    local version="$1" minor package flags="-s -w"
    minor="${version#v1.}"
    minor="${minor%%.*}"
    for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $package.gitVersion=$version -X $package.gitMajor=1"
        flags+=" -X $package.gitMinor=$minor -X $package.gitTreeState=clean"
    done
    printf '%s' "$flags"
}

# gobuild_begin BIN_DIR LOCK_NAME OUTPUT...: prints BIN_DIR and exits when every OUTPUT is
# already there (also after waiting for another build of it); else takes the lock, exports the
# Go settings and sets gobuild_staging, the directory the build writes into.
gobuild_begin() {
    local bin_dir="$1" lock="$2"
    shift 2
    if [[ "${BUILD_FORCE:-}" != 1 ]] && gobuild_complete "$bin_dir" "$@"; then
        log "reusing $bin_dir"
        printf '%s\n' "$bin_dir"
        exit 0
    fi
    mkdir -p "$(dirname "$bin_dir")"
    exec 9>"$(dirname "$bin_dir")/$lock"
    if ! flock -n 9; then
        log "another build holds $(dirname "$bin_dir")/$lock; waiting"
        flock 9
    fi
    if [[ "${BUILD_FORCE:-}" != 1 ]] && gobuild_complete "$bin_dir" "$@"; then
        log "reusing $bin_dir (built while waiting)"
        printf '%s\n' "$bin_dir"
        exit 0
    fi
    gobuild_staging="$bin_dir.partial"
    rm -rf "$gobuild_staging"
    mkdir -p "$gobuild_staging"
    export CGO_ENABLED=0
    # Keep flags set with `go env -w`; -buildvcs=false because the wrappers live inside this
    # repository and its git state must not change the binaries.
    GOFLAGS="$(go env GOFLAGS) -mod=readonly -trimpath -buildvcs=false -p=$gobuild_jobs"
    export GOFLAGS="${GOFLAGS# }"
    log "building into $bin_dir (go $(go env GOVERSION), GOFLAGS=$GOFLAGS)"
}

gobuild_complete() {
    local bin_dir="$1" output
    shift
    [[ -f "$bin_dir/.complete" ]] || return 1
    for output in "$@"; do
        [[ -s "$bin_dir/$output" ]] || return 1
    done
}

gobuild_stop_ticker() {
    if [[ -n "$gobuild_ticker_pid" ]]; then
        kill "$gobuild_ticker_pid" 2>/dev/null || true
        wait "$gobuild_ticker_pid" 2>/dev/null || true
        gobuild_ticker_pid=""
    fi
}
trap gobuild_stop_ticker EXIT

# go_build MODULE_DIR LDFLAGS PACKAGE...: one `go build` of the module's commands into the
# staging directory (each binary named after its package's last path element).
go_build() {
    local module_dir="$1" ldflags="$2" started=$SECONDS names
    shift 2
    names="$(printf '%s\n' "$@" | sed 's|.*/||' | paste -sd' ')"
    [[ "$names" == . ]] && names="$(basename "$module_dir")"
    local listing="$gobuild_staging/.packages-$(basename "$module_dir")"
    log "go build $names (module $(basename "$(dirname "$module_dir")")/$(basename "$module_dir"))"
    # The ticker sleeps 1 s at a time, so stopping it leaves no sleep process behind.
    (
        while sleep 1; do
            if (((SECONDS - started) % 30 == 0)); then
                local count last
                count="$(wc -l <"$listing")"
                last="$(tail -n 1 "$listing")"
                log "    ... $names: $(format_duration $((SECONDS - started))), $count packages compiled${last:+, last $last}"
            fi
        done
    ) &
    gobuild_ticker_pid=$!
    (cd "$module_dir" && go build -v -ldflags "$ldflags" -o "$gobuild_staging/" "$@") 2>"$listing" || {
        gobuild_stop_ticker
        tail -n 30 "$listing" >&2
        die "go build $names failed"
    }
    gobuild_stop_ticker
    log "    $names built in $(format_duration $((SECONDS - started))) ($(wc -l <"$listing") packages compiled)"
    rm -f "$listing"
}

# gobuild_finish BIN_DIR: stamps the staging directory and moves it into place.
gobuild_finish() {
    local bin_dir="$1"
    touch "$gobuild_staging/.complete"
    rm -rf "$bin_dir"
    mv "$gobuild_staging" "$bin_dir"
    log "done in $(format_duration $((SECONDS - gobuild_started))): $bin_dir"
    printf '%s\n' "$bin_dir"
}
