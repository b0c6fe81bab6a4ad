#!/usr/bin/env bash
# Smoke check of the local cluster started by e2e/cluster.sh up (kubectl only).
# Proves: the API's version; the real scheduler enforcing 8 fake GPUs (10 x 1-GPU pods -> 8 Running,
# 2 Pending); kwok's fake exits (lopper.dev/fake-exit-after / fake-exit-code) driving the Job
# controller to Complete / Failed; the garbage collector removing a Job's pods on background deletion.
# Exit status 0 only when every check passed.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLUSTER_DIR="${LOPPER_E2E_DIR:-$SCRIPT_DIR/.cluster}"
export KUBECONFIG="${KUBECONFIG_OVERRIDE:-$CLUSTER_DIR/kubeconfig}"
BIN_DIR="$("$SCRIPT_DIR/cluster.sh" bin-dir)"
KUBECTL="$BIN_DIR/kubectl"
EXPECT_VERSION="v1.35.4"
NS="lopper-smoke-$$"
PASS=0
FAIL=0

k() { "$KUBECTL" "$@"; }
ok() { echo "PASS: $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL: $*"; FAIL=$((FAIL + 1)); }

[[ -f "$KUBECONFIG" ]] || { echo "no kubeconfig at $KUBECONFIG: run e2e/cluster.sh up"; exit 1; }

cleanup() {
  k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

count_phase() { # job phase
  k -n "$NS" get pods -l "job-name=$1" --field-selector "status.phase=$2" -o name 2>/dev/null | wc -l
}

# poll seconds command...: true once the command succeeds
poll() {
  local secs="$1"; shift
  local deadline=$(( $(date +%s) + secs ))
  until "$@"; do
    (( $(date +%s) < deadline )) || return 1
    sleep 0.5
  done
}

job() { # name parallelism gpus annotations-yaml
  cat <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: $1
  namespace: $NS
spec:
  parallelism: $2
  completions: $2
  backoffLimit: 0
  template:
    metadata:
      annotations: {$4}
    spec:
      restartPolicy: Never
      containers:
      - name: trial
        image: registry.invalid/lopper/fake-trial:0
        resources:
          requests: {cpu: 100m, memory: 64Mi$( [[ "$3" != 0 ]] && echo ", nvidia.com/gpu: $3" )}
          limits: {cpu: 100m, memory: 64Mi$( [[ "$3" != 0 ]] && echo ", nvidia.com/gpu: $3" )}
YAML
}

echo "== smoke: namespace $NS, KUBECONFIG=$KUBECONFIG"
k create namespace "$NS" >/dev/null
poll 30 k -n "$NS" get serviceaccount default >/dev/null 2>&1 || bad "default ServiceAccount in $NS"

# 1. version
server_version="$(k version -o json | sed -n '/serverVersion/,/}/p' | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')"
client_version="$(k version --client -o json | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -1)"
if [[ "$server_version" == "$EXPECT_VERSION" ]]; then ok "server gitVersion $server_version"; else bad "server gitVersion '$server_version' != $EXPECT_VERSION"; fi
if [[ "$client_version" == "$EXPECT_VERSION" ]]; then ok "kubectl gitVersion $client_version"; else bad "kubectl gitVersion '$client_version' != $EXPECT_VERSION"; fi

# 2. GPU capacity: 10 single-GPU pods on 2 nodes x 4 GPUs
job gpu10 10 1 "" | k apply -f - >/dev/null
# 3./4. fake exits (no GPU, so they schedule next to the GPU job)
job exit-ok 1 0 "lopper.dev/fake-exit-after: 2s" | k apply -f - >/dev/null
job exit-three 1 0 "lopper.dev/fake-exit-after: 2s, lopper.dev/fake-exit-code: \"3\"" | k apply -f - >/dev/null

eight_running() { [[ "$(count_phase gpu10 Running)" -eq 8 && "$(count_phase gpu10 Pending)" -eq 2 ]]; }
if poll 60 eight_running; then
  sleep 3 # stays that way
  r="$(count_phase gpu10 Running)"; p="$(count_phase gpu10 Pending)"
  if [[ "$r" -eq 8 && "$p" -eq 2 ]]; then ok "gpu10: 8 Running, 2 Pending"; else bad "gpu10 drifted: $r Running, $p Pending"; fi
  reason="$(k -n "$NS" get pods -l job-name=gpu10 --field-selector status.phase=Pending \
    -o 'jsonpath={.items[*].status.conditions[?(@.type=="PodScheduled")].message}')"
  if [[ "$reason" == *"nvidia.com/gpu"* ]]; then ok "pending pods: Insufficient nvidia.com/gpu"; else bad "pending reason: $reason"; fi
else
  bad "gpu10: $(count_phase gpu10 Running) Running, $(count_phase gpu10 Pending) Pending (want 8/2)"
fi

if k -n "$NS" wait --for=condition=Complete job/exit-ok --timeout=60s >/dev/null; then
  ok "exit-ok: Job Complete"
  pod="$(k -n "$NS" get pods -l job-name=exit-ok -o 'jsonpath={.items[0].metadata.name}')"
  phase="$(k -n "$NS" get pod "$pod" -o 'jsonpath={.status.phase}')"
  started="$(k -n "$NS" get pod "$pod" -o 'jsonpath={.status.containerStatuses[0].state.terminated.startedAt}')"
  finished="$(k -n "$NS" get pod "$pod" -o 'jsonpath={.status.containerStatuses[0].state.terminated.finishedAt}')"
  ran=$(( $(date -d "$finished" +%s) - $(date -d "$started" +%s) ))
  if [[ "$phase" == Succeeded && "$ran" -ge 2 ]]; then ok "exit-ok: pod Succeeded after ${ran}s"; else bad "exit-ok pod: phase $phase ran ${ran}s"; fi
else
  bad "exit-ok: Job not Complete in 60s"
fi

if k -n "$NS" wait --for=condition=Failed job/exit-three --timeout=60s >/dev/null; then
  ok "exit-three: Job Failed"
  code="$(k -n "$NS" get pods -l job-name=exit-three -o 'jsonpath={.items[0].status.containerStatuses[0].state.terminated.exitCode}')"
  phase="$(k -n "$NS" get pods -l job-name=exit-three -o 'jsonpath={.items[0].status.phase}')"
  if [[ "$phase" == Failed && "$code" == 3 ]]; then ok "exit-three: pod Failed with exit code 3"; else bad "exit-three pod: phase $phase exit code $code"; fi
else
  bad "exit-three: Job not Failed in 60s"
fi

# 5. garbage collection
k -n "$NS" delete job gpu10 --cascade=background --wait=false >/dev/null
no_pods() { [[ "$(k -n "$NS" get pods -l job-name=gpu10 -o name 2>/dev/null | wc -l)" -eq 0 ]]; }
if poll 60 no_pods; then ok "gpu10 deleted (background): its pods are gone"; else bad "gpu10 pods left: $(k -n "$NS" get pods -l job-name=gpu10 --no-headers 2>&1 | wc -l)"; fi

echo "smoke: $PASS passed, $FAIL failed"
[[ "$FAIL" -eq 0 ]]
