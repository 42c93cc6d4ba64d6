#!/usr/bin/env bash
# Proves that the real node left nothing behind: snapshot the machine's state before `up`,
# compare after `down`.
#
#   check-clean.sh snapshot DIR   record iptables, nft tables, links, addresses, mounts, sysctls,
#                                 the node's kind of processes, cgroups and paths into DIR
#   check-clean.sh compare DIR    record again and diff; exits 1 and prints the differences when
#                                 anything is left over (or gone)
set -euo pipefail

log() { printf '%s\n' "$*" >&2; }
die() { log "check-clean.sh: $*"; exit 2; }

# Values that change on their own (counters, random numbers).
volatile_sysctls='^(fs\.(dentry-state|file-nr|inode-nr|inode-state|aio-nr|quota\.)'
volatile_sysctls+='|kernel\.(random\.|ns_last_pid|pty\.nr)|net\.netfilter\.nf_conntrack_count)'

# The executables a node run starts; any still running afterwards is a leftover.
node_processes='^(containerd|containerd-shim-runc-v2|containerd-shim|runc|kubelet|kube-proxy'
node_processes+='|docker-registry|socat|coredns|pause)$'

record() {
    local dir="$1" binary
    mkdir -p "$dir"
    for binary in iptables ip6tables; do
        # Rules and chains without the packet counters and the generated-at comments.
        "$binary-save" 2>/dev/null | sed -e '/^#/d' -e 's/\[[0-9]*:[0-9]*\]//' >"$dir/$binary" || true
    done
    nft list tables 2>/dev/null | LC_ALL=C sort >"$dir/nft-tables" || true
    ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | LC_ALL=C sort >"$dir/links"
    ip -o addr show | awk '{print $2, $3, $4}' | LC_ALL=C sort >"$dir/addresses"
    # Image builds (podman's overlay storage) mount and unmount on their own; the node's
    # container mounts are named rootfs, shm, netns or volumes, never .../overlay[/ID/merged].
    awk '{print $5}' /proc/self/mountinfo | grep -Ev '/overlay(/[0-9a-f]{64}/merged)?$' \
        | LC_ALL=C sort >"$dir/mounts"
    sysctl -a 2>/dev/null | grep -Ev "$volatile_sysctls" | LC_ALL=C sort >"$dir/sysctls" || true
    # Zombies hold nothing but a PID until this machine's init reaps them (it may take a second).
    ps -eo stat=,comm= | awk '$1 !~ /^Z/ {print $2}' | grep -E "$node_processes" | LC_ALL=C sort \
        >"$dir/processes" || true
    find /sys/fs/cgroup -maxdepth 3 -type d \( -name 'kubepods*' -o -name k8s.io \) 2>/dev/null \
        | LC_ALL=C sort >"$dir/cgroups" || true
    for path in /run/containerd /var/lib/cni /var/lib/kubelet /var/lib/kubelet/device-plugins \
        /var/log/containers /var/log/pods /run/netns /etc/cni/net.d; do
        [[ -e "$path" ]] && printf '%s\n' "$path"
    done >"$dir/paths"
}

case "${1:-}" in
    snapshot)
        [[ -n "${2:-}" ]] || die "usage: $0 snapshot DIR"
        record "$2"
        ;;
    compare)
        [[ -d "${2:-}" ]] || die "usage: $0 compare DIR (from an earlier snapshot)"
        after="$(mktemp -d)"
        trap 'rm -rf "$after"' EXIT
        record "$after"
        status=0
        # Added lines are leftovers; for the files that hold values (rules, sysctls) a removed
        # line is a changed value too. Mounts or processes of others that ended are no concern.
        for file in iptables ip6tables nft-tables sysctls; do
            if ! diff -u --label "before/$file" --label "after/$file" "$2/$file" "$after/$file"; then
                status=1
            fi
        done
        for file in links addresses mounts processes cgroups paths; do
            leftovers="$(LC_ALL=C comm -13 <(LC_ALL=C sort "$2/$file") <(LC_ALL=C sort "$after/$file"))"
            if [[ -n "$leftovers" ]]; then
                printf 'left over in %s:\n%s\n' "$file" "$leftovers"
                status=1
            fi
        done
        if ((status == 0)); then
            log "check-clean.sh: clean (iptables, nft, links, addresses, mounts, sysctls," \
                "processes, cgroups, paths)"
        else
            log "check-clean.sh: the machine differs from the snapshot (see above)"
        fi
        exit "$status"
        ;;
    *) die "usage: $0 snapshot|compare DIR" ;;
esac
