#!/usr/bin/env bash
# The local e2e cluster: a real kube-apiserver, kube-controller-manager, kube-scheduler and etcd
# run by kwokctl's binary runtime on 127.0.0.1, with fake kwok nodes (two CPU nodes, two
# gpu-small nodes in us-west-2, one gpu-large node in eu-central-1) whose Pods go Running.
#
#   cluster.sh up       build or reuse the binaries, replace any earlier run, start, add the nodes
#   cluster.sh down     stop every process of the cluster and delete its state
#   cluster.sh status   say whether it runs, and show the nodes
#   cluster.sh env      print the export lines for KUBECONFIG, PATH and the audit log
#
# Environment:
#   COMPOSE_E2E_CLUSTER  cluster name (default compose-e2e)
#   COMPOSE_E2E_STATE    state directory (default .e2e in the repository, which git ignores);
#                        holds the kwokctl workdir (component logs and the audit log under
#                        kwok/clusters/NAME/logs), the admin kubeconfig, cluster.env, kwokctl.log
#   COMPOSE_E2E_BIN      bin directory to use instead of running build.sh
set -Eeuo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
name="${COMPOSE_E2E_CLUSTER:-compose-e2e}"
state="${COMPOSE_E2E_STATE:-$repo/.e2e}"
mkdir -p "$state"
state="$(cd "$state" && pwd)"
export KWOK_WORKDIR="$state/kwok"
cluster_dir="$KWOK_WORKDIR/clusters/$name"
kubeconfig="$state/kubeconfig"
env_file="$state/cluster.env"
audit_log="$cluster_dir/logs/audit.log"
kwokctl_log="$state/kwokctl.log"

log() { printf '%s\n' "$*" >&2; }
die() { log "cluster.sh: $*"; exit 1; }

bin_dir() {
    if [[ -n "${COMPOSE_E2E_BIN:-}" ]]; then
        printf '%s' "$COMPOSE_E2E_BIN"
    else
        "$here/build.sh" | tail -n 1
    fi
}

use_bin_dir() {
    local bin="$1"
    [[ -x "$bin/kwokctl" && -x "$bin/kubectl" ]] || die "no kwokctl/kubectl in $bin"
    # kwokctl runs the kubectl it finds on PATH; it must be ours, not the machine's.
    export PATH="$bin:$PATH"
}

# PIDs of the cluster's processes, from the files kwokctl keeps.
cluster_pids() {
    local file pid
    [[ -d "$cluster_dir/pids" ]] || return 0
    for file in "$cluster_dir"/pids/*.pid; do
        [[ -f "$file" ]] || continue
        pid="$(<"$file")"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            printf '%s\n' "$pid"
        fi
    done
}

stop_cluster() {
    local pids pid waited=0
    [[ -d "$cluster_dir" ]] || return 0
    mapfile -t pids < <(cluster_pids)
    if command -v kwokctl >/dev/null; then
        kwokctl delete cluster --name "$name" --kubeconfig "$kubeconfig" >>"$kwokctl_log" 2>&1 \
            || log "cluster.sh: kwokctl delete failed; stopping the processes by PID"
    fi
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do
            if ((waited >= 100)); then
                log "cluster.sh: PID $pid ignored SIGTERM for 10 s; killing it"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
    done
    rm -rf "$cluster_dir"
}

write_config() {
    local bin="$1" config="$2" node_ip="${COMPOSE_E2E_NODE_IP:-10.250.0.1}"
    cat >"$config" <<EOF
kind: KwokctlConfiguration
apiVersion: config.kwok.x-k8s.io/v1alpha1
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeAuthorization: true
  kubeAdmission: true
  disableQPSLimits: true
  kubeAuditPolicy: $here/audit-policy.yaml
  kubeApiserverBinary: $bin/kube-apiserver
  kubeControllerManagerBinary: $bin/kube-controller-manager
  kubeSchedulerBinary: $bin/kube-scheduler
  kubectlBinary: $bin/kubectl
  etcdBinary: $bin/etcd
  kwokControllerBinary: $bin/kwok
  # A real node may join (../realnode/node.sh): pods reach the API server through the
  # kubernetes Service (first service IP), forwarded from the node address to 127.0.0.1.
  kubeApiserverCertSANs:
    - 10.96.0.1
    - $node_ip
componentsPatches:
  - name: kube-apiserver
    extraArgs:
      # The default /24 runs out after about 250 Services.
      - key: service-cluster-ip-range
        value: 10.96.0.0/16
      # For the real node: the kubernetes Service's endpoint, and logs/exec/port-forward
      # reaching its kubelet by address with a client certificate.
      - key: advertise-address
        value: $node_ip
      - key: kubelet-preferred-address-types
        value: InternalIP
      - key: kubelet-client-certificate
        value: $cluster_dir/pki/admin.crt
      - key: kubelet-client-key
        value: $cluster_dir/pki/admin.key
  - name: kwok-controller
    extraArgs:
      # Only the annotated nodes are fake, so a real kubelet may join later (the later flag wins).
      - key: manage-all-nodes
        value: "false"
      - key: manage-nodes-with-annotation-selector
        value: kwok.x-k8s.io/node=fake
EOF
}

write_env() {
    local bin="$1"
    cat >"$env_file" <<EOF
export KUBECONFIG=$kubeconfig
export PATH=$bin:\$PATH
export COMPOSE_E2E_KUBECONFIG=$kubeconfig
export COMPOSE_E2E_BIN=$bin
export COMPOSE_E2E_AUDIT_LOG=$audit_log
EOF
}

# Keeps what explains the failure, then leaves nothing running.
fail_up() {
    trap - ERR
    rm -rf "$state/failed-logs"
    cp -r "$cluster_dir/logs" "$state/failed-logs" 2>/dev/null || true
    tail -n 20 "$kwokctl_log" >&2 || true
    log "cluster.sh: $name did not come up; see $kwokctl_log and $state/failed-logs/"
    stop_cluster
    rm -f "$kubeconfig" "$env_file"
    exit 1
}

cmd_up() {
    local bin started config
    bin="$(bin_dir)"
    use_bin_dir "$bin"
    started="$(date +%s)"
    rm -f "$kwokctl_log"
    if [[ -d "$cluster_dir" ]]; then
        log "cluster.sh: removing the earlier run of $name"
        stop_cluster
    fi
    rm -f "$kubeconfig" "$env_file"
    config="$state/kwokctl.yaml"
    write_config "$bin" "$config"
    log "cluster.sh: starting $name (workdir $KWOK_WORKDIR)"
    trap fail_up ERR
    kwokctl create cluster --name "$name" --config "$config" --kubeconfig "$kubeconfig" \
        --wait 60s >>"$kwokctl_log" 2>&1
    # kwokctl exits 0 even when its wait for the API server timed out.
    kubectl --kubeconfig "$kubeconfig" --request-timeout=10s get --raw /readyz >/dev/null
    # kwokctl leaves current-context pointing at the new cluster; keep the file self-contained.
    kubectl --kubeconfig "$kubeconfig" config use-context "kwok-$name" >/dev/null
    kubectl --kubeconfig "$kubeconfig" apply -f "$here/nodes.yaml" >&2
    kubectl --kubeconfig "$kubeconfig" wait --for=condition=Ready node --all --timeout=60s >&2
    # The node lifecycle controller drops the not-ready taint a moment after Ready: until then
    # the scheduler avoids the node (a test saw the taint still on a Ready node).
    local tries=0
    while kubectl --kubeconfig "$kubeconfig" get nodes \
        -o jsonpath='{.items[*].spec.taints[*].key}' | grep -q 'node.kubernetes.io/not-ready'; do
        tries=$((tries + 1))
        ((tries < 150)) || die "a node kept its node.kubernetes.io/not-ready taint for 30 s"
        sleep 0.2
    done
    # New namespaces need their default ServiceAccount before Pods can be created.
    kubectl --kubeconfig "$kubeconfig" -n default wait --for=create serviceaccount/default \
        --timeout=60s >/dev/null
    trap - ERR
    write_env "$bin"
    log "cluster.sh: $name is up in $(($(date +%s) - started)) s"
    cat "$env_file"
}

cmd_down() {
    local started
    started="$(date +%s)"
    if [[ -d "$cluster_dir" ]]; then
        if [[ -n "${COMPOSE_E2E_BIN:-}" ]]; then
            use_bin_dir "$COMPOSE_E2E_BIN"
        elif [[ -f "$env_file" ]]; then
            use_bin_dir "$(sed -n 's/^export COMPOSE_E2E_BIN=//p' "$env_file")"
        fi
        stop_cluster
        log "cluster.sh: $name is down in $(($(date +%s) - started)) s"
    else
        log "cluster.sh: $name is not running"
    fi
    rm -f "$kubeconfig" "$env_file" "$state/kwokctl.yaml"
}

cmd_status() {
    local pids
    mapfile -t pids < <(cluster_pids)
    if ((${#pids[@]} == 0)) || [[ ! -f "$env_file" ]]; then
        log "cluster.sh: $name is not running"
        exit 1
    fi
    log "cluster.sh: $name runs as PIDs ${pids[*]}"
    # shellcheck source=/dev/null
    source "$env_file"
    kubectl get nodes -L node.kubernetes.io/instance-type -L topology.kubernetes.io/region
}

cmd_env() {
    [[ -f "$env_file" ]] || die "$name is not running (no $env_file); run: $0 up"
    cat "$env_file"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) die "usage: $0 up|down|status|env" ;;
esac
