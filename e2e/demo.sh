#!/usr/bin/env bash
# The newcomer's demo: a real control plane with kwok GPU nodes, the operator running as a
# local process under the Helm chart's ServiceAccount and RBAC, and the example chat app.
#
#   e2e/demo.sh up     build or reuse the binaries, start everything, apply the app, wait
#   e2e/demo.sh down   stop the operator and the cluster
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
    step "Stopping the operator"
    stop_operator
    step "Stopping the cluster"
    e2e/cluster/cluster.sh down
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
docs = [d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] in keep]
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

    step "What the operator made"
    kubectl -n "$app_namespace" get capp,deploy,svc,pods -o wide

    step "The environment the app's pods received"
    kubectl -n "$app_namespace" get pods -l compose-operator.io/service \
        -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{range .spec.containers[*].env[*]}{"  "}{.name}={.value}{"\n"}{end}{end}'

    printf '\nDone in %ds. Try: eval "$(e2e/cluster/cluster.sh env)"; kubectl -n %s get capp\n' \
        "$((SECONDS - started))" "$app_namespace"
    echo "Stop everything with: make demo-down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
