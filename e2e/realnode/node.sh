#!/usr/bin/env bash
# A real Kubernetes node on this machine, joined to the local e2e cluster (../cluster/cluster.sh)
# beside its kwok nodes: containerd + runc + CNI bridge, kubelet, kube-proxy (iptables),
# CoreDNS as a pod, and a local registry (Debian's docker-registry) the kubelet pulls from.
#
#   node.sh up            build or reuse the binaries, start everything, wait for the Node and DNS
#   node.sh down [--purge] stop everything and undo every change to the machine; --purge also
#                          drops the cached registry data and containerd images
#   node.sh status        say what runs and show the Node
#   node.sh env           print the export lines (also in <state>/realnode.env)
#   node.sh gpu           advertise nvidia.com/gpu again (after the Node object was recreated)
#   node.sh import FILE.. import image archives (OCI or docker-archive) into the node's containerd
#
# The node registers as $COMPOSE_E2E_NODE_NAME, labelled and tainted like a gpu-small node in
# us-west-2 (instance type, region, taint nvidia.com/gpu=present:NoSchedule), with a fake
# nvidia.com/gpu capacity: every Pod that must really run needs that toleration.
#
# Networking stays on this machine: the node address is on an interface the script creates;
# the registry, the kubelet, NodePorts and a forwarder to the API server (which listens on
# 127.0.0.1) bind there; pods may reach the node and the cluster's ranges, nothing else.
#
# Environment (defaults in brackets):
#   COMPOSE_E2E_STATE          state directory [.e2e in the repository]
#   COMPOSE_E2E_KUBECONFIG, COMPOSE_E2E_BIN
#                              the cluster's admin kubeconfig and bin directory [from
#                              <state>/cluster.env, written by ../cluster/cluster.sh up]
#   COMPOSE_OPERATOR_CACHE     cache root [${XDG_CACHE_HOME:-$HOME/.cache}/compose-operator]
#   COMPOSE_E2E_NODE_NAME      [realnode]
#   COMPOSE_E2E_NODE_IP        the node address [10.250.0.1]
#   COMPOSE_E2E_POD_CIDR       this node's pods [10.244.0.0/24]
#   COMPOSE_E2E_CLUSTER_CIDR   all pods [10.244.0.0/16]
#   COMPOSE_E2E_SERVICE_CIDR   must match the API server's [10.96.0.0/16]
#   COMPOSE_E2E_NODE_GPUS      fake nvidia.com/gpu count [4]
#   COMPOSE_E2E_NODE_TAINTS    the node's taints, KEY=VALUE:EFFECT,... ["" for none]
#                              [nvidia.com/gpu=present:NoSchedule]
#   COMPOSE_E2E_TAINT_KWOK_NODES
#                              1: while the node is up, the kwok nodes carry the taint
#                              kwok.x-k8s.io/node=fake:NoSchedule, so that pods meant to run for
#                              real land here; simulation workloads tolerate it [1]
#   COMPOSE_E2E_REALNODE_BIN   bin directory to use instead of running build.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${COMPOSE_E2E_STATE:-$repo/.e2e}"
cache_root="${COMPOSE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/compose-operator}"
node_name="${COMPOSE_E2E_NODE_NAME:-realnode}"
node_ip="${COMPOSE_E2E_NODE_IP:-10.250.0.1}"
pod_cidr="${COMPOSE_E2E_POD_CIDR:-10.244.0.0/24}"
cluster_cidr="${COMPOSE_E2E_CLUSTER_CIDR:-10.244.0.0/16}"
service_cidr="${COMPOSE_E2E_SERVICE_CIDR:-10.96.0.0/16}"
gpus="${COMPOSE_E2E_NODE_GPUS:-4}"
node_taints="${COMPOSE_E2E_NODE_TAINTS-nvidia.com/gpu=present:NoSchedule}"
taint_kwok_nodes="${COMPOSE_E2E_TAINT_KWOK_NODES:-1}"
kwok_taint=kwok.x-k8s.io/node=fake:NoSchedule
# Like the kwok gpu-small nodes in us-west-2 (the seed's cloud-labels example), plus type=real.
node_labels="node.kubernetes.io/instance-type=gpu-small,topology.kubernetes.io/region=us-west-2"
node_labels+=",topology.kubernetes.io/zone=us-west-2a,nvidia.com/gpu.present=true,type=real"

# Names of what this script creates on the machine, so that `down` removes exactly those.
host_link=coe2e0
bridge_link=coe2e-br0
guard_chain=COE2E-EGRESS
registry_port=5000

mkdir -p "$state"
state="$(cd "$state" && pwd)"
work="$state/realnode"
persist="$cache_root/realnode"
containerd_root="$persist/containerd"
registry_data="$persist/registry"
sock="$work/containerd/containerd.sock"
env_file="$state/realnode.env"
cluster_env="$state/cluster.env"

# The DNS Service's address (.10 of the service range) and the pod bridge's gateway.
service_base="${service_cidr%/*}"
dns_service_ip="${service_base%.*}.10"
pod_gateway="${pod_cidr%.*}.1"

log() { printf '%s\n' "$*" >&2; }
die() { log "node.sh: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }

require_root() { [[ "$(id -u)" == 0 ]] || die "must run as root (it runs containerd and the kubelet)"; }

# ---------------------------------------------------------------------------- processes

pid_of() {
    local file="$work/pids/$1.pid" pid
    [[ -f "$file" ]] || return 1
    pid="$(<"$file")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && printf '%s' "$pid"
}

# Starts NAME in its own session (so its forks can be stopped with it), logging to logs/NAME.log.
start() {
    local name="$1"
    shift
    setsid "$@" >>"$work/logs/$name.log" 2>&1 </dev/null &
    printf '%s\n' "$!" >"$work/pids/$name.pid"
}

# SIGTERM to the process groups of NAMEs at once, SIGKILL to those left after GRACE seconds.
stop() {
    local grace="$1" name pid waited=0
    shift
    local -a pids=()
    for name in "$@"; do
        if pid="$(pid_of "$name")"; then
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        rm -f "$work/pids/$name.pid"
    done
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((waited < grace * 10)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        if ((grace > 0)) && kill -0 "$pid" 2>/dev/null; then
            log "node.sh: PID $pid ignored SIGTERM for $grace s; killing it"
        fi
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    # Until the processes are gone (reaped), not just signalled.
    for pid in "${pids[@]}"; do
        for _ in {1..50}; do
            # Gone, or a zombie waiting for its reaper: either way it runs no more.
            [[ -e "/proc/$pid" && "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || break
            sleep 0.1
        done
    done
}

wait_for() {
    local what="$1" seconds="$2" started
    shift 2
    started="$(date +%s)"
    until "$@" >/dev/null 2>&1; do
        if (($(date +%s) - started >= seconds)); then
            die "$what not ready after $seconds s (logs in $work/logs)"
        fi
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------- inputs

bin_dir() {
    if [[ -n "${COMPOSE_E2E_REALNODE_BIN:-}" ]]; then
        printf '%s' "$COMPOSE_E2E_REALNODE_BIN"
    else
        "$here/build.sh" | tail -n 1
    fi
}

# The cluster from the environment (COMPOSE_E2E_KUBECONFIG, COMPOSE_E2E_BIN) or cluster.sh's env file.
load_cluster() {
    kubeconfig="${COMPOSE_E2E_KUBECONFIG:-}"
    cluster_bin="${COMPOSE_E2E_BIN:-}"
    if [[ -z "$kubeconfig" || -z "$cluster_bin" ]]; then
        [[ -f "$cluster_env" ]] \
            || die "the e2e cluster is not up (no $cluster_env); run ../cluster/cluster.sh up"
        kubeconfig="$(sed -n 's/^export COMPOSE_E2E_KUBECONFIG=//p' "$cluster_env")"
        cluster_bin="$(sed -n 's/^export COMPOSE_E2E_BIN=//p' "$cluster_env")"
    fi
    [[ -f "$kubeconfig" && -x "$cluster_bin/kubectl" ]] || die "no kubeconfig/kubectl for the cluster"
    api_server="$("$cluster_bin/kubectl" --kubeconfig "$kubeconfig" config view --minify \
        -o jsonpath='{.clusters[0].cluster.server}')"
    api_port="${api_server##*:}"
    ca_file="$work/ca.crt"
    mkdir -p "$work"
    "$cluster_bin/kubectl" --kubeconfig "$kubeconfig" config view --minify --flatten \
        -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$ca_file"
    [[ -s "$ca_file" ]] || die "no CA in $kubeconfig"
}

kubectl() { "$cluster_bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }
ctr() { command ctr --address "$sock" --namespace k8s.io "$@"; }

# ---------------------------------------------------------------------------- machine state

# Sysctls the kubelet, kube-proxy and the CNI bridge plugin set; restored on `down`.
tracked_sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
    kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
    net.ipv4.conf.all.forwarding net.ipv4.conf.default.forwarding net.ipv4.conf.all.route_localnet
    net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
    net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
    net.netfilter.nf_conntrack_tcp_timeout_close_wait net.netfilter.nf_conntrack_tcp_be_liberal)

# What existed before the first `up`, so `down` removes only what the node added.
record_baseline() {
    local dir="$work/baseline" key
    [[ -f "$dir/.complete" ]] && return 0
    mkdir -p "$dir"
    for key in "${tracked_sysctls[@]}"; do
        if value="$(sysctl -n "$key" 2>/dev/null)"; then
            printf '%s=%s\n' "$key" "$value"
        fi
    done >"$dir/sysctls"
    iptables_chains >"$dir/chains"
    nft_tables >"$dir/nft-tables"
    for path in /run/containerd /var/lib/cni /var/lib/kubelet /var/lib/kubelet/device-plugins \
        /var/log/containers /var/log/pods; do
        [[ -e "$path" ]] && printf '%s\n' "$path"
    done >"$dir/paths"
    touch "$dir/.complete"
}

# "BINARY TABLE CHAIN" for every chain of iptables and ip6tables.
iptables_chains() {
    local binary
    for binary in iptables ip6tables; do
        "$binary-save" 2>/dev/null \
            | awk -v b="$binary" '/^\*/ {t = substr($0, 2)} /^:/ {print b, t, substr($1, 2)}'
    done | LC_ALL=C sort
}

nft_tables() { nft list tables 2>/dev/null | LC_ALL=C sort || true; }

# Removes the chains that were not in the baseline and carry a prefix the node's parts use:
# flushes them, deletes the jumps to them from the other chains, then deletes them; one
# iptables-restore --noflush transaction per binary.
remove_new_chains() {
    local binary
    local -a new=()
    mapfile -t new < <(iptables_chains | LC_ALL=C comm -23 - "$work/baseline/chains" \
        | awk '$3 ~ /^(KUBE-|CNI-|COE2E-)/')
    ((${#new[@]} > 0)) || return 0
    for binary in iptables ip6tables; do
        printf '%s\n' "${new[@]}" | grep -q "^$binary " || continue
        "$binary-save" 2>/dev/null | awk -v binary="$binary" -v chains="$(printf '%s\n' "${new[@]}")" '
            BEGIN {
                n = split(chains, lines, "\n")
                for (i = 1; i <= n; i++) {
                    split(lines[i], f, " ")
                    if (f[1] == binary) new[f[2] " " f[3]] = 1
                }
            }
            /^\*/ { table = substr($0, 2); jumps = ""; next }
            /^-A / {
                if ((table " " $2) in new) next
                for (i = 3; i < NF; i++)
                    if (($i == "-j" || $i == "-g") && ((table " " $(i + 1)) in new)) {
                        jumps = jumps "-D" substr($0, 3) "\n"
                        break
                    }
                next
            }
            /^COMMIT/ {
                flushes = ""; deletes = ""
                for (key in new) {
                    split(key, k, " ")
                    if (k[1] != table) continue
                    flushes = flushes "-F " k[2] "\n"
                    deletes = deletes "-X " k[2] "\n"
                }
                if (flushes != "") printf "*%s\n%s%s%sCOMMIT\n", table, flushes, jumps, deletes
            }' | "$binary-restore" -w --noflush \
            || log "node.sh: could not remove every new $binary chain"
    done
}

# nft tables that appeared during the run and hold nothing but built-in chains and chains of the
# node's parts (iptables-nft creates a table per family and table name; kube-proxy creates its
# own nftables tables to clean them up).
remove_new_nft_tables() {
    local family name foreign
    LC_ALL=C comm -23 <(nft_tables) "$work/baseline/nft-tables" | while read -r _ family name; do
        foreign="$(nft list table "$family" "$name" 2>/dev/null | awk '$1 == "chain" {print $2}' \
            | grep -Ev '^(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING|KUBE-.*|CNI-.*|COE2E-.*)$' \
            || true)"
        if [[ "$name" == kube-proxy || -z "$foreign" ]]; then
            nft delete table "$family" "$name" 2>/dev/null || true
        else
            log "node.sh: kept nft table $family $name (it holds chains of others: $foreign)"
        fi
    done
}

restore_sysctls() {
    local line key value
    [[ -f "$work/baseline/sysctls" ]] || return 0
    while IFS= read -r line; do
        key="${line%%=*}"
        value="${line#*=}"
        if [[ "$(sysctl -n "$key" 2>/dev/null)" != "$value" ]]; then
            sysctl -q -w "$key=$value" >/dev/null 2>&1 || log "node.sh: could not restore $key=$value"
        fi
    done <"$work/baseline/sysctls"
}

unmount_under() {
    local prefix="$1" mountpoint
    # Deepest first; mountinfo field 5 is the mount point (octal-escaped).
    awk -v p="$prefix/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r | uniq \
        | while read -r mountpoint; do
            mountpoint="$(printf '%b' "$mountpoint")"
            umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" 2>/dev/null || true
        done
}

# The kubelet's and containerd's cgroups: kill what is left in them, then remove them.
remove_cgroups() {
    local top dir pid
    for top in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/kubepods \
        /sys/fs/cgroup/k8s.io /sys/fs/cgroup/kubepods.slice; do
        [[ -d "$top" ]] || continue
        while read -r pid; do
            kill -KILL "$pid" 2>/dev/null || true
        done < <(find "$top" -name cgroup.procs -exec cat {} + 2>/dev/null)
    done
    for top in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/kubepods \
        /sys/fs/cgroup/k8s.io /sys/fs/cgroup/kubepods.slice; do
        [[ -d "$top" ]] || continue
        find "$top" -depth -type d -print 2>/dev/null | while read -r dir; do
            rmdir "$dir" 2>/dev/null || true
        done
    done
}

# Shims of the node's containerd (their command line names its socket) left after it stopped.
leftover_shims() {
    local proc cmdline
    for proc in /proc/[0-9]*; do
        cmdline="$({ tr '\0' ' ' <"$proc/cmdline"; } 2>/dev/null)" || continue
        if [[ "$cmdline" == *containerd-shim*" $sock "* ]]; then
            printf '%s\n' "${proc#/proc/}"
        fi
    done
}

# ---------------------------------------------------------------------------- parts

setup_network() {
    if ! ip link show "$host_link" >/dev/null 2>&1; then
        # An empty bridge holds the address: it is always there, and some kernels lack "dummy".
        ip link add "$host_link" type bridge
    fi
    ip addr replace "$node_ip/32" dev "$host_link"
    ip link set "$host_link" up
    # Pods reach the node, each other and Services; anything else is dropped. mangle/FORWARD
    # runs after DNAT and before kube-proxy's filter rules, which accept marked traffic early.
    if ! iptables -w -t mangle -L "$guard_chain" >/dev/null 2>&1; then
        iptables -w -t mangle -N "$guard_chain"
        iptables -w -t mangle -A "$guard_chain" -d "$cluster_cidr" -j RETURN
        iptables -w -t mangle -A "$guard_chain" -d "$service_cidr" -j RETURN
        iptables -w -t mangle -A "$guard_chain" -d "$node_ip/32" -j RETURN
        iptables -w -t mangle -A "$guard_chain" -m comment \
            --comment "compose-operator e2e: pods stay on this machine" -j DROP
    fi
    iptables -w -t mangle -C FORWARD -s "$cluster_cidr" -j "$guard_chain" 2>/dev/null \
        || iptables -w -t mangle -I FORWARD 1 -s "$cluster_cidr" -j "$guard_chain"
}

start_registry() {
    pid_of registry >/dev/null && return 0
    mkdir -p "$registry_data"
    cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $registry_data
  delete:
    enabled: true
http:
  addr: $node_ip:$registry_port
EOF
    start registry docker-registry serve "$work/registry.yml"
    wait_for "registry" 20 curl -fsS "http://$node_ip:$registry_port/v2/"
}

# The API server listens on 127.0.0.1 only; pods reach it through the `kubernetes` Service,
# whose endpoint is the advertised node address, forwarded here to the loopback listener.
start_api_forwarder() {
    pid_of api-forwarder >/dev/null && return 0
    start api-forwarder socat "TCP-LISTEN:$api_port,bind=$node_ip,fork,reuseaddr" \
        "TCP:127.0.0.1:$api_port"
    wait_for "API forwarder" 10 bash -c "exec 3<>/dev/tcp/$node_ip/$api_port"
}

write_containerd_config() {
    local host
    mkdir -p "$work/containerd" "$work/cni/net.d" "$work/cni/ipam" "$containerd_root"
    cat >"$work/containerd/config.toml" <<EOF
version = 2
root = "$containerd_root"
state = "$work/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$work/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:local"
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$work/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$work/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$work/certs.d"
EOF
    # One registry, several names: the node address (host and pods), localhost, and the
    # in-cluster Service name (which the host cannot resolve, so containerd is told where it is).
    for host in "$node_ip:$registry_port" "localhost:$registry_port" \
        "registry.kube-system.svc.cluster.local:$registry_port" \
        "registry.kube-system.svc:$registry_port"; do
        mkdir -p "$work/certs.d/$host"
        cat >"$work/certs.d/$host/hosts.toml" <<EOF
server = "http://$node_ip:$registry_port"

[host."http://$node_ip:$registry_port"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
    done
    cat >"$work/cni/net.d/10-coe2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "coe2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge_link",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$pod_cidr", "gateway": "$pod_gateway"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$work/cni/ipam"
      }
    }
  ]
}
EOF
}

start_containerd() {
    pid_of containerd >/dev/null && return 0
    write_containerd_config
    start containerd containerd --config "$work/containerd/config.toml"
    wait_for "containerd" 30 command ctr --address "$sock" version
}

# Imports the node's own images unless containerd already holds them with the same digest.
import_images() {
    local archive name digest
    for archive in "$bin/images/"*.tar; do
        read -r name digest < <(python3 -c '
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    index = json.load(tar.extractfile("index.json"))
m = index["manifests"][0]
print(m["annotations"]["io.containerd.image.name"], m["digest"])' "$archive")
        if ctr images ls -q "name==$name" 2>/dev/null | grep -qx "$name" \
            && [[ "$(ctr images ls "name==$name" | awk 'NR == 2 {print $3}')" == "$digest" ]]; then
            continue
        fi
        log "node.sh: importing $name"
        ctr images import --no-unpack=false "$archive" >/dev/null
    done
}

# COMPOSE_E2E_NODE_TAINTS as the KubeletConfiguration's registerWithTaints list.
taints_yaml() {
    local taint key value effect
    [[ -n "$node_taints" ]] || { printf ' []'; return; }
    IFS=, read -r -a list <<<"$node_taints"
    for taint in "${list[@]}"; do
        key="${taint%%=*}"
        value="${taint#*=}"
        effect="${value##*:}"
        value="${value%:*}"
        printf '\n  - key: %s\n    value: "%s"\n    effect: %s' "$key" "$value" "$effect"
    done
}

write_kubelet_config() {
    mkdir -p "$work/kubelet/root" "$work/kubelet/pki" "$work/kubelet/pod-logs"
    # Pods with dnsPolicy Default get this file: no resolver beyond the pod itself.
    printf 'nameserver 127.0.0.1\n' >"$work/kubelet/resolv.conf"
    cat >"$work/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $ca_file
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
imageServiceEndpoint: unix://$sock
clusterDNS:
  - $dns_service_ip
clusterDomain: cluster.local
resolvConf: $work/kubelet/resolv.conf
podLogsDir: $work/kubelet/pod-logs
podCIDR: $pod_cidr
registerNode: true
registerWithTaints:$(taints_yaml)
serializeImagePulls: false
# Images imported with ctr and also pulled under a registry name share an image ID; the default
# policy then refuses the imported name to pods with imagePullPolicy Never.
imagePullCredentialsVerificationPolicy: NeverVerify
maxPods: 110
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
staticPodPath: ""
rotateCertificates: false
serverTLSBootstrap: false
EOF
}

start_kubelet() {
    pid_of kubelet >/dev/null && return 0
    write_kubelet_config
    start kubelet "$bin/kubelet" --config "$work/kubelet/config.yaml" --kubeconfig "$kubeconfig" \
        --root-dir "$work/kubelet/root" --cert-dir "$work/kubelet/pki" \
        --hostname-override "$node_name" --node-ip "$node_ip" \
        --node-labels "$node_labels" \
        --v=1
}

wait_node_ready() {
    wait_for "Node $node_name" 60 kubectl get node "$node_name"
    kubectl wait --for=condition=Ready "node/$node_name" --timeout=60s >/dev/null \
        || die "Node $node_name not Ready (logs in $work/logs/kubelet.log)"
}

advertise_gpus() {
    local gpu_entry="\"nvidia.com/gpu\":\"$gpus\""
    kubectl patch node "$node_name" --subresource=status --type=merge \
        -p "{\"status\":{\"capacity\":{$gpu_entry},\"allocatable\":{$gpu_entry}}}" \
        >/dev/null
}

# The kwok nodes (annotation kwok.x-k8s.io/node=fake).
kwok_nodes() {
    kubectl get nodes -o json | python3 -c '
import json, sys
for node in json.load(sys.stdin)["items"]:
    if node["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake":
        print(node["metadata"]["name"])'
}

# While the real node is up, pods that must really run keep off the kwok nodes.
set_kwok_taint() {
    local action="$1"
    [[ "$taint_kwok_nodes" == 1 ]] || return 0
    local -a names
    mapfile -t names < <(kwok_nodes)
    ((${#names[@]} > 0)) || return 0
    if [[ "$action" == add ]]; then
        kubectl taint nodes "${names[@]}" "$kwok_taint" --overwrite >/dev/null
    else
        kubectl taint nodes "${names[@]}" "${kwok_taint%%=*}:NoSchedule-" >/dev/null 2>&1 || true
    fi
}

start_kube_proxy() {
    pid_of kube-proxy >/dev/null && return 0
    mkdir -p "$work/kube-proxy"
    cat >"$work/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $kubeconfig
mode: iptables
hostnameOverride: $node_name
clusterCIDR: $cluster_cidr
bindAddress: $node_ip
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses:
  - $node_ip/32
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
EOF
    start kube-proxy "$bin/kube-proxy" --config "$work/kube-proxy/config.yaml" --v=1
    wait_for "kube-proxy" 30 curl -fsS http://127.0.0.1:10256/healthz
}

# The cluster objects the node brings (addons.yaml with its placeholders filled in).
cluster_addons() {
    sed -e "s/@NODE_NAME@/$node_name/g" -e "s/@NODE_IP@/$node_ip/g" \
        -e "s/@DNS_SERVICE_IP@/$dns_service_ip/g" -e "s/@REGISTRY_PORT@/$registry_port/g" \
        "$here/addons.yaml"
}

# Applied once kube-proxy has synced, so that CoreDNS's first calls to the API server through
# the kubernetes Service succeed (after a failed one its client backs off for up to 30 s).
apply_cluster_addons() {
    cluster_addons | kubectl apply --server-side --force-conflicts -f - >/dev/null
    kubectl -n kube-system rollout status deployment/coredns --timeout=60s >/dev/null \
        || die "CoreDNS not ready: $(kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide 2>&1)"
}

write_env() {
    cat >"$env_file" <<EOF
export COMPOSE_E2E_NODE_NAME=$node_name
export COMPOSE_E2E_NODE_IP=$node_ip
export COMPOSE_E2E_NODE_GPUS=$gpus
export COMPOSE_E2E_REGISTRY=$node_ip:$registry_port
export COMPOSE_E2E_REGISTRY_SERVICE=registry.kube-system.svc.cluster.local:$registry_port
export COMPOSE_E2E_CONTAINERD_ADDRESS=$sock
export COMPOSE_E2E_REALNODE_BIN=$bin
export COMPOSE_E2E_REALNODE_DIR=$work
EOF
}

# ---------------------------------------------------------------------------- commands

cmd_up() {
    local started step
    require_root
    started="$(now)"
    bin="$(bin_dir)"
    load_cluster
    # A node left running for an earlier cluster (another API server or CA) starts over.
    local cluster_id
    cluster_id="$api_server $(sha256sum <"$ca_file" | cut -c1-16)"
    if [[ -f "$work/cluster-id" && "$(<"$work/cluster-id")" != "$cluster_id" ]]; then
        log "node.sh: the cluster changed since $node_name started; restarting it"
        cmd_down
        load_cluster
    fi
    mkdir -p "$work/pids" "$work/logs"
    printf '%s\n' "$cluster_id" >"$work/cluster-id"
    record_baseline
    step="$(now)"
    setup_network
    start_registry
    start_api_forwarder
    start_containerd
    import_images
    log "node.sh: network, registry, containerd up in $(elapsed "$step") s"
    step="$(now)"
    start_kubelet
    wait_node_ready
    advertise_gpus
    set_kwok_taint add
    log "node.sh: Node $node_name Ready in $(elapsed "$step") s"
    step="$(now)"
    start_kube_proxy
    apply_cluster_addons
    log "node.sh: kube-proxy and CoreDNS up in $(elapsed "$step") s"
    write_env
    log "node.sh: $node_name is up in $(elapsed "$started") s"
    cat "$env_file"
}

cmd_down() {
    local started purge="${1:-}" pid path
    require_root
    started="$(now)"
    if [[ ! -d "$work" ]]; then
        log "node.sh: $node_name is not running"
        [[ "$purge" == --purge ]] && rm -rf "$persist"
        return 0
    fi
    rm -f "$env_file"
    # What the node added to the cluster (its addons, its Node and pods, the kwok taints) goes
    # when the cluster outlives the node.
    if (load_cluster) 2>/dev/null; then
        load_cluster
        # Pods bound to the node would otherwise wait out the node lifecycle's timeouts when
        # the node comes back (CoreDNS's rollout took 30 s): their containers go below anyway.
        kubectl delete pods --all-namespaces --field-selector "spec.nodeName=$node_name" \
            --force --grace-period=0 --wait=false >/dev/null 2>&1 || true
        cluster_addons | kubectl delete --ignore-not-found --wait=false -f - >/dev/null 2>&1 || true
        kubectl delete node "$node_name" --wait=false >/dev/null 2>&1 || true
        set_kwok_taint remove
    fi
    # The pods' host-side veths, named now: one whose namespace the kernel frees late would
    # outlive the bridge (seen once after a demo with vLLM), so they are deleted by name below.
    local -a pod_veths
    mapfile -t pod_veths < <(ip -o link show master "$bridge_link" 2>/dev/null \
        | awk -F': ' '{ split($2, name, "@"); print name[1] }')
    stop 10 kubelet kube-proxy
    if pid_of containerd >/dev/null; then
        # Every container and sandbox goes; the images stay in the cache for the next run.
        local -a tasks containers
        mapfile -t tasks < <(ctr tasks ls -q 2>/dev/null)
        for task in "${tasks[@]}"; do
            ctr tasks kill --all --signal SIGKILL "$task" >/dev/null 2>&1 || true
        done
        for task in "${tasks[@]}"; do
            ctr tasks delete --force "$task" >/dev/null 2>&1 || true
        done
        mapfile -t containers < <(ctr containers ls -q 2>/dev/null)
        ((${#containers[@]} == 0)) || ctr containers delete "${containers[@]}" >/dev/null 2>&1 || true
    fi
    # The forwarder and the registry hold no state worth a graceful end.
    stop 10 containerd
    stop 0 api-forwarder registry
    for pid in $(leftover_shims); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    remove_cgroups
    # The pods' network namespaces are bind mounts under the state dir: unmounted, they go, and
    # their veth pairs with them.
    unmount_under "$work"
    unmount_under "$containerd_root"
    for veth in "${pod_veths[@]}"; do
        ip link delete "$veth" 2>/dev/null || true
    done
    ip link delete "$bridge_link" 2>/dev/null || true
    ip link delete "$host_link" 2>/dev/null || true
    if [[ -f "$work/baseline/chains" ]]; then
        remove_new_chains
        remove_new_nft_tables
    fi
    restore_sysctls
    if [[ -f "$work/baseline/paths" ]]; then
        for path in /run/containerd /var/lib/cni /var/lib/kubelet/device-plugins /var/log/containers \
            /var/log/pods; do
            grep -qx "$path" "$work/baseline/paths" || rm -rf "$path" || true
        done
        grep -qx /var/lib/kubelet "$work/baseline/paths" || rmdir /var/lib/kubelet 2>/dev/null || true
    fi
    rm -rf "$work"
    [[ "$purge" == --purge ]] && rm -rf "$persist"
    log "node.sh: $node_name is down in $(elapsed "$started") s"
}

cmd_status() {
    local name pid running=0
    for name in registry api-forwarder containerd kubelet kube-proxy; do
        if pid="$(pid_of "$name")"; then
            log "node.sh: $name runs as PID $pid"
            running=$((running + 1))
        else
            log "node.sh: $name is not running"
        fi
    done
    ((running > 0)) || exit 1
    load_cluster
    kubectl get node "$node_name" -o wide
    kubectl get node "$node_name" \
        -o jsonpath='{"allocatable nvidia.com/gpu: "}{.status.allocatable.nvidia\.com/gpu}{"\n"}'
    ((running == 5)) || exit 1
}

cmd_env() {
    [[ -f "$env_file" ]] || die "$node_name is not up (no $env_file); run: $0 up"
    cat "$env_file"
}

cmd_import() {
    local archive
    require_root
    pid_of containerd >/dev/null || die "containerd of $node_name is not running"
    for archive in "$@"; do
        log "node.sh: importing $archive"
        ctr images import "$archive" >&2
    done
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down "${2:-}" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    gpu)
        load_cluster
        advertise_gpus
        ;;
    import)
        shift
        cmd_import "$@"
        ;;
    *) die "usage: $0 up|down [--purge]|status|env|gpu|import FILE..." ;;
esac
