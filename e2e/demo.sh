#!/usr/bin/env bash
# The newcomer's demo. By default everything runs for real (needs root): a real control plane,
# a real node (kubelet, containerd, CoreDNS, a local registry) beside the kwok GPU nodes, the
# operator as a pod installed with its Helm chart, and the example chat app from
# examples/chat-app/ with llama.cpp and vLLM serving real small models on CPU. After Ready the
# app is asked a question and the model's answer is printed.
#
#   e2e/demo.sh up          build or reuse everything, start it, apply the app, wait, ask
#   e2e/demo.sh up --kwok   no root needed: kwok nodes only (simulated pods), the operator as a
#                           local process under the chart's ServiceAccount, examples/chat-app.yaml
#   e2e/demo.sh down        stop whatever is running (node, operator, cluster)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
state="${COMPOSE_E2E_STATE:-$repo/.e2e}"
mkdir -p "$state"
operator_pid="$state/operator.pid"
operator_log="$state/operator.log"
app_namespace="demo"
app_name="chat"
example="examples/chat-app.yaml"
started=$SECONDS

step() { printf '\n==> [%3ds] %s\n' "$((SECONDS - started))" "$*"; }

stop_operator() {
    if [[ -f "$operator_pid" ]]; then
        local pid
        pid="$(<"$operator_pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$operator_pid"
    fi
}

down() {
    if e2e/realnode/node.sh status >/dev/null 2>&1; then
        step "Stopping the real node"
        e2e/realnode/node.sh down
    fi
    step "Stopping the operator"
    stop_operator
    step "Stopping the cluster"
    e2e/cluster/cluster.sh down
}

up_real() {
    step "Building or reusing the binaries and the images, Go beside podman (cold: about 15 minutes)"
    e2e/prepare.sh
    bin="$(e2e/cluster/build.sh 2>/dev/null | tail -n 1)"
    export PATH="$bin:$PATH"

    step "Starting the cluster (kube-apiserver, controller-manager, scheduler, etcd, kwok nodes)"
    stop_operator
    e2e/cluster/cluster.sh up >/dev/null
    eval "$(e2e/cluster/cluster.sh env)"

    step "Starting the real node (containerd, kubelet, kube-proxy, CoreDNS, registry)"
    e2e/realnode/node.sh up >/dev/null
    eval "$(e2e/realnode/node.sh env)"
    kubectl get nodes -L type -L node.kubernetes.io/instance-type -L topology.kubernetes.io/region

    step "Images and models into the node's registry, the operator (Helm), the app, Ready"
    echo "   (cold: vLLM's 6.7 GB image is pushed and pulled, then vLLM loads on CPU; see README)"
    .venv/bin/python e2e/realchat.py up "$app_namespace" "$app_name"

    step "Asking the app (POST /chat inside its pod: vLLM embeds, llama.cpp answers)"
    .venv/bin/python e2e/realchat.py ask "$app_namespace" \
        "Which engine serves embedding models, and which serves GGUF models?"

    show_result
}

service_account_kubeconfig() {
    local token="$1" out="$2"
    kubectl config view --raw --minify -o json | .venv/bin/python -c '
import json, sys, yaml
admin = json.load(sys.stdin)
token, out = sys.argv[1], sys.argv[2]
user = "compose-operator"
config = {
    "apiVersion": "v1", "kind": "Config",
    "clusters": [{"name": "demo", "cluster": admin["clusters"][0]["cluster"]}],
    "users": [{"name": user, "user": {"token": token}}],
    "contexts": [{"name": user, "context": {"cluster": "demo", "user": user}}],
    "current-context": user,
}
with open(out, "w") as handle:
    yaml.safe_dump(config, handle)
' "$token" "$out"
    chmod 600 "$out"
}

up() {
    step "Building or reusing the cluster binaries (a cold build takes about 8 minutes)"
    bin="$(e2e/cluster/build.sh | tail -n 1)"
    export PATH="$bin:$PATH"

    step "Starting the cluster (kube-apiserver, controller-manager, scheduler, etcd, kwok nodes)"
    stop_operator
    e2e/cluster/cluster.sh up >/dev/null
    eval "$(e2e/cluster/cluster.sh env)"
    kubectl get nodes -L node.kubernetes.io/instance-type -L topology.kubernetes.io/region

    step "Installing the CRD and the Helm chart's RBAC"
    kubectl apply --server-side -f crds/composeapp.yaml >/dev/null
    kubectl wait --for=condition=Established crd/composeapps.compose-operator.io --timeout=60s
    kubectl create namespace compose-operator --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    helm template compose-operator charts/compose-operator --namespace compose-operator \
        --set webhook.enabled=false \
        | .venv/bin/python -c '
import sys, yaml
keep = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
docs = [d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] in keep
        and "helm.sh/hook" not in (d["metadata"].get("annotations") or {})]
yaml.safe_dump_all(docs, sys.stdout)' \
        | kubectl apply --server-side -f - >/dev/null

    step "Starting the operator as system:serviceaccount:compose-operator:compose-operator"
    token="$(kubectl -n compose-operator create token compose-operator --duration=24h)"
    service_account_kubeconfig "$token" "$state/operator-kubeconfig"
    KUBECONFIG="$state/operator-kubeconfig" nohup .venv/bin/compose-operator run \
        --all-namespaces --settings e2e/settings-kwok.yaml --log-format plain \
        --metrics-port 18080 --health-port 18081 >"$operator_log" 2>&1 &
    echo $! >"$operator_pid"
    for _ in $(seq 120); do
        curl -fsS http://127.0.0.1:18081/readyz >/dev/null 2>&1 && break
        kill -0 "$(<"$operator_pid")" 2>/dev/null || { cat "$operator_log"; exit 1; }
        sleep 0.5
    done
    echo "operator ready; its log: $operator_log"

    step "Applying $example as ComposeApp $app_namespace/$app_name"
    kubectl create namespace "$app_namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    # Every pod the operator renders meets Pod Security "restricted".
    kubectl label --overwrite namespace "$app_namespace" \
        pod-security.kubernetes.io/enforce=restricted >/dev/null
    .venv/bin/compose-operator convert -f "$example" --name "$app_name" --namespace "$app_namespace" \
        | kubectl apply -f -

    step "Waiting for Ready (a line when the status changes, else every 10 s)"
    local ready="" message="" shown="" last_shown=0 deadline=$((SECONDS + 180))
    while ((SECONDS < deadline)); do
        ready="$(kubectl -n "$app_namespace" get capp "$app_name" \
            -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
        message="$(kubectl -n "$app_namespace" get capp "$app_name" \
            -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}' 2>/dev/null || true)"
        if [[ "$ready $message" != "$shown" ]] || ((SECONDS - last_shown >= 10)); then
            printf '  [%3ds] Ready=%s %s\n' "$((SECONDS - started))" "${ready:-?}" "$message"
            shown="$ready $message"
            last_shown=$SECONDS
        fi
        [[ "$ready" == "True" ]] && break
        sleep 1
    done
    [[ "$ready" == "True" ]] || { echo "the app did not become Ready; see $operator_log" >&2; exit 1; }

    show_result
}

show_result() {
    step "What the operator made"
    kubectl -n "$app_namespace" get capp,deploy,svc,pods -o wide

    step "The environment the app's pods received"
    kubectl -n "$app_namespace" get pods -l compose-operator.io/service \
        -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{range .spec.containers[*].env[*]}{"  "}{.name}={.value}{"\n"}{end}{end}'

    printf '\nDone in %ds. Try: eval "$(e2e/cluster/cluster.sh env)"; kubectl -n %s get capp\n' \
        "$((SECONDS - started))" "$app_namespace"
    echo "Stop everything with: make demo-down"
}

case "${1:-} ${2:-}" in
    "up --kwok") up ;;
    "up ") up_real ;;
    "down ") down ;;
    *) echo "usage: $0 up [--kwok] | down" >&2; exit 2 ;;
esac
