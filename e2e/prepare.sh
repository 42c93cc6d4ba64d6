#!/usr/bin/env bash
# Builds or reuses everything `make demo` and the real-node suite run, in two lanes at once:
#
#   go      the cluster binaries, then the node binaries (e2e/cluster/build.sh, e2e/realnode/build.sh)
#   images  the container images (e2e/images/build.sh all: base, llama.cpp, vLLM, uv, operator, app)
#
# Neither needs the other, and on two cores they overlap well: each lane spends minutes on
# single-threaded links, downloads (Go modules, 169 Python packages, Debian packages) and disk
# writes while the other compiles. Both lanes print their own timed progress lines
# ([cluster-build ...], [realnode-build ...], [images ...]); a failing lane stops the other.
# Warm, both only check their caches (about 2 s). Needs root (podman, debootstrap).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
started=$SECONDS

say() { printf '==> [%4ds] %s\n' "$((SECONDS - started))" "$*" >&2; }

go_lane() {
    "$repo/e2e/cluster/build.sh" >/dev/null
    "$repo/e2e/realnode/build.sh" >/dev/null
}

images_lane() {
    "$repo/e2e/images/build.sh" all >&2
}

# Each lane in its own process group (job control), so a failure can stop the other lane with
# every process it started.
set -m
declare -A lane_pid lane_started
for lane in go images; do
    "${lane}_lane" &
    lane_pid[$lane]=$!
    lane_started[$lane]=$SECONDS
done
set +m
say "running in parallel: go (cluster, then node binaries) [pid ${lane_pid[go]}], images (base, llama.cpp, vLLM, uv, operator, app) [pid ${lane_pid[images]}]"

stop_lanes() {
    local lane
    for lane in "${!lane_pid[@]}"; do
        kill -- -"${lane_pid[$lane]}" 2>/dev/null || true
    done
}
trap 'stop_lanes; exit 130' INT TERM

remaining=(go images)
while ((${#remaining[@]} > 0)); do
    finished_pid=""
    status=0
    wait -n -p finished_pid "${lane_pid[@]}" || status=$?
    for lane in "${remaining[@]}"; do
        [[ "${lane_pid[$lane]}" == "$finished_pid" ]] || continue
        if ((status != 0)); then
            say "lane $lane failed (exit $status) after $((SECONDS - lane_started[$lane])) s; stopping the others"
            stop_lanes
            wait || true
            exit 1
        fi
        say "lane $lane done in $((SECONDS - lane_started[$lane])) s"
        mapfile -t remaining < <(printf '%s\n' "${remaining[@]}" | grep -vx "$lane")
        unset "lane_pid[$lane]"
    done
done
say "binaries and images ready"
