#!/usr/bin/env bash
# Lopper on kind with fake GPUs, from an empty machine with Docker to a finished study.
# Needs: docker, kind, kubectl, helm on PATH. See e2e/kind/README.md (this does NOT run on the
# project's CI machines: they have no Docker engine).
#
#   e2e/kind/run.sh            create the cluster, install, run the digits study, watch it finish
#   CLUSTER=x GPUS_PER_NODE=8 e2e/kind/run.sh
#   kind delete cluster --name lopper      # when done
set -euo pipefail

CLUSTER="${CLUSTER:-lopper}"
GPUS_PER_NODE="${GPUS_PER_NODE:-4}"
NAMESPACE="${NAMESPACE:-lopper-system}"
IMAGE="${IMAGE:-lopper:dev}"
TIMEOUT_S="${TIMEOUT_S:-3600}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

for tool in docker kind kubectl helm curl; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

echo "== 1. kind cluster '$CLUSTER'"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config e2e/kind/kind-config.yaml --wait 120s
fi
export KUBECONFIG="${KUBECONFIG:-$HOME/.kube/config}"
kubectl config use-context "kind-$CLUSTER"

echo "== 2. fake GPUs: nvidia.com/gpu=$GPUS_PER_NODE on every worker's status"
# The documented way to advertise an extended resource: a JSON patch on the node's /status
# subresource ("/" in the resource name escaped as "~1"). The scheduler then counts it like a real
# GPU; containers get no device, which is fine for the example (it trains on CPU).
kubectl proxy --port=0 >/tmp/lopper-kind-proxy.log 2>&1 &
PROXY_PID=$!
trap 'kill "$PROXY_PID" 2>/dev/null || true' EXIT
PROXY_PORT=""
for _ in $(seq 50); do
  PROXY_PORT="$(sed -n 's/^Starting to serve on 127.0.0.1:\([0-9]*\)$/\1/p' /tmp/lopper-kind-proxy.log)"
  [[ -n "$PROXY_PORT" ]] && break
  sleep 0.2
done
[[ -n "$PROXY_PORT" ]] || { echo "kubectl proxy did not start" >&2; exit 1; }
for node in $(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' -o jsonpath='{.items[*].metadata.name}'); do
  curl -fsS -o /dev/null -X PATCH -H 'Content-Type: application/json-patch+json' \
    --data "[{\"op\": \"add\", \"path\": \"/status/capacity/nvidia.com~1gpu\", \"value\": \"$GPUS_PER_NODE\"}]" \
    "http://127.0.0.1:$PROXY_PORT/api/v1/nodes/$node/status"
done
kubectl get nodes -o custom-columns='NODE:.metadata.name,GPUS:.status.allocatable.nvidia\.com/gpu'

echo "== 3. images: the operator ($IMAGE) and the digits trainer"
docker build -t "$IMAGE" .
DIGITS_IMAGE="$(sed -n 's/^ *image: *\([^ #]*\).*/\1/p' examples/digits/study.yaml | head -n1)"
docker build -t "$DIGITS_IMAGE" examples/digits
kind load docker-image --name "$CLUSTER" "$IMAGE" "$DIGITS_IMAGE"

echo "== 4. helm install (CRDs from charts/lopper/crds)"
helm upgrade --install lopper charts/lopper --namespace "$NAMESPACE" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --set logFormat=text
# One replica leads (holds the Lease) and reconciles; wait for that rather than for every pod.
for _ in $(seq 120); do
  holder="$(kubectl -n "$NAMESPACE" get lease lopper-controller -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)"
  [[ -n "$holder" ]] && break
  sleep 2
done
[[ -n "${holder:-}" ]] || { kubectl -n "$NAMESPACE" logs deploy/lopper --tail=50 >&2; exit 1; }
kubectl -n "$NAMESPACE" get deploy,pods,lease

echo "== 5. the digits study, one (fake) GPU per trial"
# The example runs on CPU and asks for no GPU; add `gpus: 1` to its trialTemplate here so the
# scheduler packs trials onto the fake GPUs exactly as on a real GPU cluster.
sed 's/^\(    primaryContainer: trainer\)$/\1\n    gpus: 1/' examples/digits/study.yaml | kubectl apply -f -

echo "== 6. watching until it finishes (Ctrl-C stops watching, not the study)"
deadline=$(( $(date +%s) + TIMEOUT_S ))
while :; do
  phase="$(kubectl get study digits -o jsonpath='{.status.phase}')"
  kubectl get study digits --no-headers
  case "$phase" in Succeeded|Failed) break ;; esac
  (( $(date +%s) < deadline )) || { echo "timed out after ${TIMEOUT_S}s" >&2; exit 1; }
  sleep 10
done
kubectl get trials -l lopper.dev/study=digits
kubectl get study digits -o jsonpath='{.status.best}{"\n"}{.status.gpuSeconds}{"\n"}'
echo "study digits: $phase. Plot it with: lopper plot --study digits -o digits.png"
[[ "$phase" == Succeeded ]]
