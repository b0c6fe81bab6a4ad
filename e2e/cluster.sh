#!/usr/bin/env bash
# Lopper's local Kubernetes control plane with fake GPU nodes.
#
#   e2e/cluster.sh build    build (once) the pinned binaries into the cache
#   e2e/cluster.sh up       build if needed, start etcd, kube-apiserver, kube-controller-manager,
#                           kube-scheduler and kwok, create the fake GPU nodes, wait until Ready
#                           (with LOPPER_E2E_KUEUE=1 also Kueue, the JobSet controller and the
#                           Kubeflow Trainer controller)
#   e2e/cluster.sh addons-up  start those three on a running cluster
#   e2e/cluster.sh status   show each component and the nodes
#   e2e/cluster.sh logs [component]   tail the component logs (e2e/.cluster/logs/<component>.log)
#   e2e/cluster.sh restart-apiserver   stop and start kube-apiserver (fault injection)
#   e2e/cluster.sh down     stop everything `up` started (by recorded pid) and remove the data
#   e2e/cluster.sh env      print `export KUBECONFIG=...` (for eval)
#   e2e/cluster.sh bin-dir  print the folder holding the cached binaries
#
# Environment (all optional):
#   LOPPER_E2E_CACHE            binaries cache root        (default: $HOME/.cache/lopper-e2e)
#   LOPPER_E2E_DIR              cluster state/data folder  (default: <repo>/e2e/.cluster)
#   LOPPER_E2E_ETCD_PORT        etcd client port           (default: 23790)
#   LOPPER_E2E_ETCD_PEER_PORT   etcd peer port             (default: 23800)
#   LOPPER_E2E_APISERVER_PORT   kube-apiserver secure port (default: 16443)
#   LOPPER_E2E_KCM_PORT         controller-manager port    (default: 16457)
#   LOPPER_E2E_SCHEDULER_PORT   scheduler port             (default: 16459)
#   LOPPER_E2E_KWOK_PORT        kwok server port           (default: 16480)
#   LOPPER_E2E_KUEUE=1          also build and start Kueue and the JobSet controller (and install
#                               their CRDs and the Kubeflow Trainer's), see e2e/README.md
#   LOPPER_E2E_KUEUE_WEBHOOK_PORT, _KUEUE_HEALTH_PORT, _KUEUE_VISIBILITY_PORT,
#   LOPPER_E2E_JOBSET_WEBHOOK_PORT, _JOBSET_HEALTH_PORT,
#   LOPPER_E2E_TRAINER_WEBHOOK_PORT, _TRAINER_HEALTH_PORT   their loopback ports (16490..16496)
#   LOPPER_E2E_UP_TIMEOUT       seconds to wait for each readiness step (default: 90)
#   LOPPER_E2E_BUILD_NICE       nice level for `go build`  (default: 5)
#   LOPPER_E2E_CLIENT_QPS/_BURST  controller-manager and scheduler client rate (default 200/400;
#                               their defaults, 20/30 and 50/100, throttle 1,000 trials' pods;
#                               kwok needs nothing: its client has no rate limit)
# A default port that is busy is replaced by the next free one (printed); a port given through
# the environment is used as is.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
TOOLS_DIR="$SCRIPT_DIR/tools"
STAGES_FILE="$SCRIPT_DIR/kwok-stages.yaml"
LOGS_TEMPLATE="$SCRIPT_DIR/kwok-logs.yaml"
FAKE_LOGS_DIR="$SCRIPT_DIR/fake-logs"
CLUSTER_DIR="${LOPPER_E2E_DIR:-$SCRIPT_DIR/.cluster}"
CACHE_ROOT="${LOPPER_E2E_CACHE:-${HOME:-/root}/.cache/lopper-e2e}"
UP_TIMEOUT="${LOPPER_E2E_UP_TIMEOUT:-90}"
BUILD_NICE="${LOPPER_E2E_BUILD_NICE:-5}"

K8S_VERSION="v1.35.4"
K8S_MAJOR="1"
K8S_MINOR="35"
KWOK_VERSION="0.8.0"
HELM_VERSION="v3.22.0"

# Start order; `down` stops in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
# Optional components (LOPPER_E2E_KUEUE=1), built into their own cache folder so the core
# binaries' cache stays valid; `down` stops them whenever they run.
ADDONS=(jobset-controller trainer-controller-manager kueue)
KUEUE_ENABLED="${LOPPER_E2E_KUEUE:-0}"
[[ "$KUEUE_ENABLED" == 1 ]] && COMPONENTS+=("${ADDONS[@]}")
ADDON_LDFLAGS="-s -w"
# binary | module dir (under e2e/tools) | package
ADDON_TABLE=(
  "kueue|kueue|sigs.k8s.io/kueue/cmd/kueue"
  "jobset-controller|jobset|sigs.k8s.io/jobset"
  "trainer-controller-manager|trainer|github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager"
)
NODES=(fake-gpu-0 fake-gpu-1)

K8S_LDFLAGS="-s -w \
-X k8s.io/component-base/version.gitVersion=${K8S_VERSION} \
-X k8s.io/component-base/version.gitMajor=${K8S_MAJOR} \
-X k8s.io/component-base/version.gitMinor=${K8S_MINOR} \
-X k8s.io/component-base/version.gitTreeState=clean \
-X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION} \
-X k8s.io/client-go/pkg/version.gitMajor=${K8S_MAJOR} \
-X k8s.io/client-go/pkg/version.gitMinor=${K8S_MINOR}"
KWOK_LDFLAGS="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}"
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
ETCD_LDFLAGS="-s -w"

# binary | module dir (under e2e/tools) | package | ldflags variable
BUILD_TABLE=(
  "etcd|etcd|go.etcd.io/etcd/server/v3|ETCD_LDFLAGS"
  "kube-apiserver|.|k8s.io/kubernetes/cmd/kube-apiserver|K8S_LDFLAGS"
  "kube-controller-manager|.|k8s.io/kubernetes/cmd/kube-controller-manager|K8S_LDFLAGS"
  "kube-scheduler|.|k8s.io/kubernetes/cmd/kube-scheduler|K8S_LDFLAGS"
  "kubectl|.|k8s.io/kubernetes/cmd/kubectl|K8S_LDFLAGS"
  "kwok|kwok|sigs.k8s.io/kwok/cmd/kwok|KWOK_LDFLAGS"
  "helm|helm|helm.sh/helm/v3/cmd/helm|HELM_LDFLAGS"
)

log() { printf '[cluster.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Cache key and build
# ---------------------------------------------------------------------------------------------
cache_key() {
  # Hash of every pinned module file plus the ldflags: a change to any of them means a new folder.
  {
    local f
    for f in go.mod go.sum etcd/go.mod etcd/go.sum kwok/go.mod kwok/go.sum helm/go.mod helm/go.sum; do
      printf '== %s\n' "$f"
      cat "$TOOLS_DIR/$f"
    done
    printf '%s\n' "$K8S_LDFLAGS" "$KWOK_LDFLAGS" "$HELM_LDFLAGS" "$ETCD_LDFLAGS" "trimpath"
  } | sha256sum | cut -c1-16
}

BIN_DIR="$CACHE_ROOT/$(cache_key)/bin"

addon_cache_key() {
  {
    local f
    for f in kueue/go.mod kueue/go.sum jobset/go.mod jobset/go.sum trainer/go.mod trainer/go.sum; do
      printf '== %s\n' "$f"
      cat "$TOOLS_DIR/$f"
    done
    printf '%s\n' "$ADDON_LDFLAGS" "trimpath"
  } | sha256sum | cut -c1-16
}
ADDON_BIN_DIR="$CACHE_ROOT/addons-$(addon_cache_key)/bin"

# The folder holding a component's binary.
bin_dir_of() {
  if [[ " ${ADDONS[*]} " == *" $1 "* ]]; then echo "$ADDON_BIN_DIR"; else echo "$BIN_DIR"; fi
}

have_addon_binaries() {
  local row
  for row in "${ADDON_TABLE[@]}"; do
    [[ -x "$ADDON_BIN_DIR/${row%%|*}" ]] || return 1
  done
}

cmd_build_addons() {
  command -v go >/dev/null || die "go is not installed (needed once, to build Kueue and JobSet)"
  mkdir -p "$ADDON_BIN_DIR"
  exec 7>"$ADDON_BIN_DIR/../build.lock"
  flock 7
  local row name moddir pkg start tmp
  for row in "${ADDON_TABLE[@]}"; do
    IFS='|' read -r name moddir pkg <<<"$row"
    if [[ -x "$ADDON_BIN_DIR/$name" ]]; then
      log "  $name: cached"
      continue
    fi
    log "  $name: go build $pkg ..."
    start=$(date +%s)
    tmp="$ADDON_BIN_DIR/.$name.tmp.$$"
    if ! (cd "$TOOLS_DIR/$moddir" && nice -n "$BUILD_NICE" \
          go build -mod=readonly -trimpath -ldflags "$ADDON_LDFLAGS" -o "$tmp" "$pkg"); then
      rm -f "$tmp"
      die "building $name failed"
    fi
    mv -f "$tmp" "$ADDON_BIN_DIR/$name"
    log "  $name: built in $(( $(date +%s) - start ))s"
  done
  exec 7>&-
}

have_all_binaries() {
  local row name
  for row in "${BUILD_TABLE[@]}"; do
    name="${row%%|*}"
    [[ -x "$BIN_DIR/$name" ]] || return 1
  done
}

cmd_build() {
  command -v go >/dev/null || die "go is not installed (needed once, to build the control plane)"
  mkdir -p "$BIN_DIR"
  # One builder at a time per cache key (parallel test runs, two clones on one machine).
  exec 8>"$BIN_DIR/../build.lock"
  flock 8
  if have_all_binaries; then
    log "binaries cached in $BIN_DIR"
    exec 8>&-
    return 0
  fi
  log "building the control plane into $BIN_DIR (first time: many minutes on 2 cores)"
  local total_start row name moddir pkg ldvar start tmp
  total_start=$(date +%s)
  for row in "${BUILD_TABLE[@]}"; do
    IFS='|' read -r name moddir pkg ldvar <<<"$row"
    if [[ -x "$BIN_DIR/$name" ]]; then
      log "  $name: cached"
      continue
    fi
    log "  $name: go build $pkg ..."
    start=$(date +%s)
    tmp="$BIN_DIR/.$name.tmp.$$"
    if ! (cd "$TOOLS_DIR/$moddir" && nice -n "$BUILD_NICE" \
          go build -mod=readonly -trimpath -ldflags "${!ldvar}" -o "$tmp" "$pkg"); then
      rm -f "$tmp"
      die "building $name failed"
    fi
    mv -f "$tmp" "$BIN_DIR/$name"
    log "  $name: built in $(( $(date +%s) - start ))s"
  done
  log "build done in $(( $(date +%s) - total_start ))s"
  exec 8>&-
}

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------
pid_file() { echo "$CLUSTER_DIR/pids/$1.pid"; }

# Prints the pid of a component when its recorded process is alive and is our binary.
component_pid() {
  local f pid exe
  f="$(pid_file "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against pid reuse: the process must run the binary we started.
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ -z "$exe" || "$(basename "${exe% (deleted)}")" == "$1" ]] || return 1
  echo "$pid"
}

start_component() {
  local name="$1"; shift
  local logf="$CLUSTER_DIR/logs/$name.log"
  : >"$logf"
  # setsid: own session, so the caller's terminal or process group signals don't reach it.
  # Every inherited fd above 2 is closed (lock fds, e.g. from `flock FILE cluster.sh up`, and any
  # pipe of a caller) and stdio goes to the log, so callers get EOF and locks are released.
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd="${fd##*/}"
      if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid "$(bin_dir_of "$name")/$name" "$@" </dev/null >>"$logf" 2>&1
  ) &
  echo $! >"$(pid_file "$name")"
  log "  started $name (pid $!), log $logf"
}

stop_component() {
  local name="$1" pid i
  if pid="$(component_pid "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "  $name (pid $pid) did not stop in 10s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
    log "  stopped $name (pid $pid)"
  fi
  rm -f "$(pid_file "$name")"
}

# ---------------------------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port VAR_NAME default: an explicit env value is used as is; a busy default moves up.
pick_port() {
  local var="$1" def="$2" p
  if [[ -n "${!var:-}" ]]; then
    echo "${!var}"
    return
  fi
  for ((p = def; p < def + 200; p++)); do
    if ! port_busy "$p" && [[ " ${PICKED_PORTS:-} " != *" $p "* ]]; then
      [[ "$p" != "$def" ]] && log "  port $def busy, $var uses $p"
      PICKED_PORTS="${PICKED_PORTS:-} $p"
      echo "$p"
      return
    fi
  done
  die "no free port near $def for $var"
}

# ---------------------------------------------------------------------------------------------
# Certificates and kubeconfigs
# ---------------------------------------------------------------------------------------------
gen_certs() {
  local pki="$CLUSTER_DIR/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    umask 077
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=lopper-e2e-ca" -out ca.crt 2>/dev/null
    # Front-proxy CA: only so the components' delegated authentication finds the
    # requestheader CA bundle it looks for (otherwise their logs fill with errors).
    openssl ecparam -name prime256v1 -genkey -noout -out front-proxy-ca.key 2>/dev/null
    openssl req -x509 -new -key front-proxy-ca.key -sha256 -days 3650 -subj "/CN=lopper-e2e-front-proxy-ca" \
      -out front-proxy-ca.crt 2>/dev/null
    # Service-account token signing key pair.
    openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
    openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
    issue() { # name subject extfile-content
      openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
      openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    issue apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    issue admin "/O=system:masters/CN=admin" "$client"
    # O=system:masters: with --use-service-account-credentials=false every controller acts as this
    # user, and the bootstrap system:kube-controller-manager role alone cannot (e.g.) update nodes.
    issue kube-controller-manager "/O=system:masters/CN=system:kube-controller-manager" "$client"
    issue kube-scheduler "/CN=system:kube-scheduler" "$client"
    issue kwok "/O=system:masters/CN=kwok" "$client"
    # The operator's own identity (bench/scale.sh runs it with operator.kubeconfig), so the
    # audit log can count its requests apart from every other client's.
    issue lopper-operator "/O=system:masters/CN=lopper-operator" "$client"
    # kwok's kubelet API (containerLogs for `kubectl logs`), dialled by the apiserver at the
    # nodes' InternalIP 127.0.0.1, verified with --kubelet-certificate-authority.
    issue kwok-server "/CN=kwok-server" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
    # The apiserver's client certificate towards aggregated APIs, signed by the front-proxy CA.
    openssl ecparam -name prime256v1 -genkey -noout -out front-proxy-client.key 2>/dev/null
    openssl req -new -key front-proxy-client.key -subj "/CN=front-proxy-client" -out front-proxy-client.csr 2>/dev/null
    printf '%s\n' "$client" >front-proxy-client.ext
    openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key -CAcreateserial \
      -sha256 -days 3650 -extfile front-proxy-client.ext -out front-proxy-client.crt 2>/dev/null
    rm -f front-proxy-client.csr front-proxy-client.ext
  )
}

write_kubeconfig() { # file user
  local file="$1" user="$2" pki="$CLUSTER_DIR/pki"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: lopper-e2e
  cluster:
    server: https://127.0.0.1:${APISERVER_PORT}
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: ${user}
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$user.crt")
    client-key-data: $(base64 -w0 <"$pki/$user.key")
contexts:
- name: lopper-e2e
  context:
    cluster: lopper-e2e
    user: ${user}
    namespace: default
current-context: lopper-e2e
EOF
  chmod 600 "$file"
}

# ---------------------------------------------------------------------------------------------
# Waiting
# ---------------------------------------------------------------------------------------------
wait_until() { # description command...
  local what="$1"; shift
  local deadline=$(( $(date +%s) + UP_TIMEOUT ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      log "timed out after ${UP_TIMEOUT}s waiting for $what"
      return 1
    fi
    sleep 0.25
  done
}

etcd_healthy() { curl -fsS --max-time 5 "http://127.0.0.1:${ETCD_PORT}/health" | grep -q '"health":"true"'; }
apiserver_ready() {
  curl -fsS --max-time 5 --cacert "$CLUSTER_DIR/pki/ca.crt" --cert "$CLUSTER_DIR/pki/admin.crt" \
    --key "$CLUSTER_DIR/pki/admin.key" "https://127.0.0.1:${APISERVER_PORT}/readyz" | grep -q '^ok'
}
kctl() { "$BIN_DIR/kubectl" --request-timeout=10s --kubeconfig "$CLUSTER_DIR/kubeconfig" "$@"; }
default_sa_exists() { kctl -n default get serviceaccount default; }
nodes_ready() {
  local n
  for n in "${NODES[@]}"; do
    [[ "$(kctl get node "$n" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == "True" ]] || return 1
  done
}
cluster_healthy() { apiserver_ready && nodes_ready; }
nodes_untainted() {
  # The node lifecycle controller removes its not-ready taint once kwok reports Ready.
  local n
  for n in "${NODES[@]}"; do
    [[ -z "$(kctl get node "$n" -o 'jsonpath={.spec.taints}')" ]] || return 1
  done
}

fail_up() {
  log "up failed: $*"
  if [[ "${ADDONS_ONLY:-0}" == 1 ]]; then
    # addons-up: the cluster others use stays; only what this command started stops.
    local a
    for a in "${ADDONS[@]}"; do
      tail -n 15 "$CLUSTER_DIR/logs/$a.log" >&2 2>/dev/null || true
      stop_component "$a"
    done
    exit 1
  fi
  local c
  for c in "${COMPONENTS[@]}"; do
    if [[ -f "$CLUSTER_DIR/logs/$c.log" ]]; then
      echo "----- last lines of $CLUSTER_DIR/logs/$c.log -----" >&2
      tail -n 15 "$CLUSTER_DIR/logs/$c.log" >&2 || true
    fi
  done
  log "stopping what was started"
  do_down
  exit 1
}

# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------
load_ports() {
  if [[ -f "$CLUSTER_DIR/ports.env" ]]; then
    # shellcheck disable=SC1091
    source "$CLUSTER_DIR/ports.env"
  fi
}

any_component_running() {
  local c
  for c in "${COMPONENTS[@]}" "${ADDONS[@]}"; do
    component_pid "$c" >/dev/null && return 0
  done
  return 1
}

all_components_running() {
  local c
  for c in "${COMPONENTS[@]}"; do
    component_pid "$c" >/dev/null || return 1
  done
}

lock_cluster() {
  mkdir -p "$CLUSTER_DIR"
  exec 9>"$CLUSTER_DIR/.lock"
  flock 9
}

print_usage_hint() {
  echo "Cluster is up (Kubernetes ${K8S_VERSION}, API https://127.0.0.1:${APISERVER_PORT})."
  echo "Use it with:"
  echo "  export KUBECONFIG=$CLUSTER_DIR/kubeconfig"
  echo "  export PATH=$BIN_DIR:\$PATH   # kubectl, helm"
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------
# kube-apiserver with the cluster's flags (also used by `restart-apiserver`).
start_apiserver() {
  local pki="$CLUSTER_DIR/pki"
  log "starting kube-apiserver on https://127.0.0.1:${APISERVER_PORT}"
  start_component kube-apiserver \
    --etcd-servers="http://127.0.0.1:${ETCD_PORT}" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="${APISERVER_PORT}" \
    --cert-dir="$CLUSTER_DIR/data/apiserver-certs" \
    --tls-cert-file="$pki/apiserver.crt" \
    --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" \
    --proxy-client-key-file="$pki/front-proxy-client.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --authorization-mode=Node,RBAC \
    --endpoint-reconciler-type=none \
    --kubelet-preferred-address-types=InternalIP \
    --kubelet-certificate-authority="$pki/ca.crt" \
    --allow-privileged=true \
    --profiling=false \
    --audit-policy-file="$CLUSTER_DIR/audit-policy.yaml" \
    --audit-log-path="$CLUSTER_DIR/logs/audit.log" \
    --audit-log-format=json \
    --audit-log-maxsize=512 \
    --audit-log-maxbackup=1 \
    --v=1
}

cmd_up() {
  lock_cluster
  load_ports
  # Already running: wait for it to answer (it may just be slow under load) rather than restart it
  # under the feet of whoever uses it.
  if all_components_running && [[ -n "${APISERVER_PORT:-}" ]] && wait_until "running cluster to answer" cluster_healthy; then
    log "already up"
    cmd_status_unlocked
    print_usage_hint
    return 0
  fi
  if any_component_running || [[ -d "$CLUSTER_DIR/data" ]]; then
    log "found a partial or stale cluster: stopping it first"
    do_down
  fi

  local t0
  t0=$(date +%s)
  have_all_binaries || cmd_build
  if [[ "$KUEUE_ENABLED" == 1 ]]; then have_addon_binaries || cmd_build_addons; fi
  command -v openssl >/dev/null || die "openssl missing: run e2e/install-deps.sh"
  command -v curl >/dev/null || die "curl missing: run e2e/install-deps.sh"

  mkdir -p "$CLUSTER_DIR"/{data,logs,pids,pki}
  rm -f "$CLUSTER_DIR"/logs/*.log
  PICKED_PORTS=""
  ETCD_PORT="$(pick_port LOPPER_E2E_ETCD_PORT 23790)"; PICKED_PORTS+=" $ETCD_PORT"
  ETCD_PEER_PORT="$(pick_port LOPPER_E2E_ETCD_PEER_PORT 23800)"; PICKED_PORTS+=" $ETCD_PEER_PORT"
  APISERVER_PORT="$(pick_port LOPPER_E2E_APISERVER_PORT 16443)"; PICKED_PORTS+=" $APISERVER_PORT"
  KCM_PORT="$(pick_port LOPPER_E2E_KCM_PORT 16457)"; PICKED_PORTS+=" $KCM_PORT"
  SCHEDULER_PORT="$(pick_port LOPPER_E2E_SCHEDULER_PORT 16459)"; PICKED_PORTS+=" $SCHEDULER_PORT"
  KWOK_PORT="$(pick_port LOPPER_E2E_KWOK_PORT 16480)"
  cat >"$CLUSTER_DIR/ports.env" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
APISERVER_PORT=$APISERVER_PORT
KCM_PORT=$KCM_PORT
SCHEDULER_PORT=$SCHEDULER_PORT
KWOK_PORT=$KWOK_PORT
BIN_DIR=$BIN_DIR
EOF

  log "generating certificates"
  gen_certs
  write_kubeconfig "$CLUSTER_DIR/kubeconfig" admin
  write_kubeconfig "$CLUSTER_DIR/kube-controller-manager.kubeconfig" kube-controller-manager
  write_kubeconfig "$CLUSTER_DIR/kube-scheduler.kubeconfig" kube-scheduler
  write_kubeconfig "$CLUSTER_DIR/kwok.kubeconfig" kwok
  write_kubeconfig "$CLUSTER_DIR/operator.kubeconfig" lopper-operator
  # Audit only the operator's identity (Metadata: verb, resource, user; no bodies), so a bench
  # can count its API requests by verb and resource; every other client is not logged.
  cat >"$CLUSTER_DIR/audit-policy.yaml" <<'EOF_AUDIT'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    users: ["lopper-operator"]
  - level: None
EOF_AUDIT
  local pki="$CLUSTER_DIR/pki"

  log "starting etcd on 127.0.0.1:${ETCD_PORT}"
  start_component etcd \
    --name=lopper-e2e \
    --data-dir="$CLUSTER_DIR/data/etcd" \
    --listen-client-urls="http://127.0.0.1:${ETCD_PORT}" \
    --advertise-client-urls="http://127.0.0.1:${ETCD_PORT}" \
    --listen-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-advertise-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-cluster="lopper-e2e=http://127.0.0.1:${ETCD_PEER_PORT}" \
    --unsafe-no-fsync \
    --quota-backend-bytes=2147483648 \
    --log-level=warn
  wait_until "etcd health" etcd_healthy || fail_up "etcd did not become healthy"

  start_apiserver
  wait_until "kube-apiserver /readyz" apiserver_ready || fail_up "kube-apiserver did not become ready"

  log "starting kube-controller-manager, kube-scheduler, kwok"
  start_component kube-controller-manager \
    --kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="${KCM_PORT}" \
    --cert-dir="$CLUSTER_DIR/data/kcm-certs" \
    --controllers='*' \
    --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" \
    --cluster-signing-key-file="$pki/ca.key" \
    --use-service-account-credentials=false \
    --kube-api-qps="${LOPPER_E2E_CLIENT_QPS:-200}" \
    --kube-api-burst="${LOPPER_E2E_CLIENT_BURST:-400}" \
    --leader-elect=false \
    --profiling=false \
    --v=1
  start_component kube-scheduler \
    --kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="${SCHEDULER_PORT}" \
    --cert-dir="$CLUSTER_DIR/data/scheduler-certs" \
    --kube-api-qps="${LOPPER_E2E_CLIENT_QPS:-200}" \
    --kube-api-burst="${LOPPER_E2E_CLIENT_BURST:-400}" \
    --leader-elect=false \
    --profiling=false \
    --v=1
  # Simulated pod logs (kwok ClusterLogs): the template with the absolute fake-logs path.
  sed "s|@FAKE_LOGS_DIR@|$FAKE_LOGS_DIR|g" "$LOGS_TEMPLATE" >"$CLUSTER_DIR/kwok-logs.yaml"
  start_component kwok \
    --kubeconfig="$CLUSTER_DIR/kwok.kubeconfig" \
    --config="$STAGES_FILE" \
    --config="$CLUSTER_DIR/kwok-logs.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 \
    --cidr=10.244.0.0/16 \
    --node-ip=127.0.0.1 \
    --node-port="${KWOK_PORT}" \
    --tls-cert-file="$pki/kwok-server.crt" \
    --tls-private-key-file="$pki/kwok-server.key" \
    --server-address="127.0.0.1:${KWOK_PORT}"

  log "creating fake GPU nodes ${NODES[*]}"
  local n
  for n in "${NODES[@]}"; do
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: ${n}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: ${n}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    nvidia.com/gpu.present: "true"
status:
  capacity:
    cpu: "32"
    memory: 256Gi
    pods: "110"
    nvidia.com/gpu: "4"
  allocatable:
    cpu: "32"
    memory: 256Gi
    pods: "110"
    nvidia.com/gpu: "4"
EOF
  done >"$CLUSTER_DIR/nodes.yaml"
  kctl create -f "$CLUSTER_DIR/nodes.yaml" >/dev/null || fail_up "creating nodes failed"

  wait_until "nodes Ready" nodes_ready || fail_up "nodes did not become Ready (kwok)"
  wait_until "nodes untainted" nodes_untainted || fail_up "nodes kept their taints (controller-manager)"
  wait_until "default ServiceAccount" default_sa_exists || fail_up "no default ServiceAccount (controller-manager)"
  if [[ "$KUEUE_ENABLED" == 1 ]]; then start_addons; fi
  for n in "${COMPONENTS[@]}"; do
    component_pid "$n" >/dev/null || fail_up "$n exited during start"
  done
  log "up in $(( $(date +%s) - t0 ))s"
  print_usage_hint
}

# Kueue and the JobSet controller as local processes against the apiserver, with their CRDs
# (and the Kubeflow Trainer's, so TrainJobs can be created and queued) installed from the
# pinned module sources. Their webhook servers must run for the managers to start: they serve
# on loopback with a certificate of the cluster CA, but are not registered (no webhook
# configurations): Lopper creates workloads already suspended and labelled, which is what
# Kueue's defaulting webhook would do, and the JobSet CRD's schema defaults fill the rest.
start_addons() {
  local pki="$CLUSTER_DIR/pki" moddir
  KUEUE_WEBHOOK_PORT="$(pick_port LOPPER_E2E_KUEUE_WEBHOOK_PORT 16490)"; PICKED_PORTS+=" $KUEUE_WEBHOOK_PORT"
  KUEUE_HEALTH_PORT="$(pick_port LOPPER_E2E_KUEUE_HEALTH_PORT 16491)"; PICKED_PORTS+=" $KUEUE_HEALTH_PORT"
  KUEUE_VISIBILITY_PORT="$(pick_port LOPPER_E2E_KUEUE_VISIBILITY_PORT 16492)"; PICKED_PORTS+=" $KUEUE_VISIBILITY_PORT"
  JOBSET_WEBHOOK_PORT="$(pick_port LOPPER_E2E_JOBSET_WEBHOOK_PORT 16493)"; PICKED_PORTS+=" $JOBSET_WEBHOOK_PORT"
  JOBSET_HEALTH_PORT="$(pick_port LOPPER_E2E_JOBSET_HEALTH_PORT 16494)"; PICKED_PORTS+=" $JOBSET_HEALTH_PORT"
  TRAINER_WEBHOOK_PORT="$(pick_port LOPPER_E2E_TRAINER_WEBHOOK_PORT 16495)"; PICKED_PORTS+=" $TRAINER_WEBHOOK_PORT"
  TRAINER_HEALTH_PORT="$(pick_port LOPPER_E2E_TRAINER_HEALTH_PORT 16496)"
  cat >>"$CLUSTER_DIR/ports.env" <<EOF
KUEUE_WEBHOOK_PORT=$KUEUE_WEBHOOK_PORT
KUEUE_HEALTH_PORT=$KUEUE_HEALTH_PORT
KUEUE_VISIBILITY_PORT=$KUEUE_VISIBILITY_PORT
JOBSET_WEBHOOK_PORT=$JOBSET_WEBHOOK_PORT
JOBSET_HEALTH_PORT=$JOBSET_HEALTH_PORT
TRAINER_WEBHOOK_PORT=$TRAINER_WEBHOOK_PORT
TRAINER_HEALTH_PORT=$TRAINER_HEALTH_PORT
EOF
  mkdir -p "$pki/webhook"
  (
    cd "$pki"
    umask 077
    openssl ecparam -name prime256v1 -genkey -noout -out webhook/tls.key 2>/dev/null
    openssl req -new -key webhook/tls.key -subj "/CN=addon-webhooks" -out webhook.csr 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost" >webhook.ext
    openssl x509 -req -in webhook.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
      -extfile webhook.ext -out webhook/tls.crt 2>/dev/null
    rm -f webhook.csr webhook.ext
  )
  # Kueue v0.17 reads its metrics serving certificate from this fixed path whenever its own
  # certificate management is off (its metrics server stays disabled: bindAddress "0").
  install -D -m 0644 "$pki/webhook/tls.crt" /etc/kueue/metrics/certs/tls.crt
  install -D -m 0600 "$pki/webhook/tls.key" /etc/kueue/metrics/certs/tls.key
  # The Trainer's webhook server has no certDir setting: controller-runtime's default folder.
  install -D -m 0644 "$pki/webhook/tls.crt" /tmp/k8s-webhook-server/serving-certs/tls.crt
  install -D -m 0600 "$pki/webhook/tls.key" /tmp/k8s-webhook-server/serving-certs/tls.key
  log "installing the Kueue, JobSet and Kubeflow Trainer CRDs from the pinned modules"
  local crd_dirs=() d f
  moddir="$(module_dir kueue sigs.k8s.io/kueue)" || fail_up "kueue module source"
  crd_dirs+=("$moddir/config/components/crd/bases")
  moddir="$(module_dir jobset sigs.k8s.io/jobset)" || fail_up "jobset module source"
  crd_dirs+=("$moddir/config/components/crd/bases")
  moddir="$(module_dir trainer github.com/kubeflow/trainer/v2)" || fail_up "trainer module source"
  crd_dirs+=("$moddir/manifests/base/crds")
  local files=()
  for d in "${crd_dirs[@]}"; do
    for f in "$d"/*.yaml; do
      [[ "$(basename "$f")" == kustomization.yaml ]] || files+=(-f "$f")
    done
  done
  # Server-side: Kueue's CRDs are too large for the last-applied annotation.
  kctl apply --server-side --force-conflicts "${files[@]}" >/dev/null || fail_up "installing the CRDs"
  kctl wait --for condition=established --timeout=60s crd --all >/dev/null || fail_up "CRDs not established"
  kctl create namespace kueue-system >/dev/null 2>&1 || true
  cat >"$CLUSTER_DIR/kueue-config.yaml" <<EOF
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
health:
  healthProbeBindAddress: 127.0.0.1:${KUEUE_HEALTH_PORT}
metrics:
  bindAddress: "0"
webhook:
  host: 127.0.0.1
  port: ${KUEUE_WEBHOOK_PORT}
  certDir: $pki/webhook
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
manageJobsWithoutQueueName: false
clientConnection:
  qps: 200
  burst: 400
integrations:
  frameworks:
  - batch/job
  - jobset.x-k8s.io/jobset
  - trainer.kubeflow.org/trainjob
EOF
  cat >"$CLUSTER_DIR/jobset-config.yaml" <<EOF
apiVersion: config.jobset.x-k8s.io/v1alpha1
kind: Configuration
health:
  healthProbeBindAddress: 127.0.0.1:${JOBSET_HEALTH_PORT}
metrics:
  bindAddress: "0"
webhook:
  host: 127.0.0.1
  port: ${JOBSET_WEBHOOK_PORT}
  certDir: $pki/webhook
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
clientConnection:
  qps: 200
  burst: 400
EOF
  cat >"$CLUSTER_DIR/trainer-config.yaml" <<EOF
apiVersion: config.trainer.kubeflow.org/v1alpha1
kind: Configuration
health:
  healthProbeBindAddress: 127.0.0.1:${TRAINER_HEALTH_PORT}
metrics:
  bindAddress: "0"
webhook:
  host: 127.0.0.1
  port: ${TRAINER_WEBHOOK_PORT}
leaderElection:
  leaderElect: false
certManagement:
  enable: false
EOF
  log "starting jobset-controller, trainer-controller-manager and kueue"
  KUBECONFIG="$CLUSTER_DIR/kubeconfig" start_component jobset-controller \
    --config="$CLUSTER_DIR/jobset-config.yaml" --zap-log-level=info
  KUBECONFIG="$CLUSTER_DIR/kubeconfig" start_component trainer-controller-manager \
    --config="$CLUSTER_DIR/trainer-config.yaml"
  KUBECONFIG="$CLUSTER_DIR/kubeconfig" start_component kueue \
    --config="$CLUSTER_DIR/kueue-config.yaml" \
    --visibility-server-port="${KUEUE_VISIBILITY_PORT}" \
    --feature-gates=VisibilityOnDemand=false \
    --zap-log-level=2
  # Registered webhooks, each at its loopback server (url + the cluster CA):
  # - JobSet's JobSet webhooks: its controller dereferences fields only the defaulting webhook
  #   sets (spec.network) and panics without it. Its pod webhooks (exclusive placement only)
  #   are left out, so no pod creation depends on the process.
  # - Kueue's TrainJob defaulting webhook: it adds the runtime patch Kueue's TrainJob
  #   integration needs to unsuspend an admitted TrainJob. Kueue's other webhooks are left out
  #   (every Job of the cluster would depend on the process; Lopper creates workloads already
  #   suspended and labelled, which is what they would default).
  local ca
  ca="$(base64 -w0 <"$pki/ca.crt")"
  {
    webhook_yaml Mutating jobset-mutating-webhook-configuration mjobset.kb.io "$JOBSET_WEBHOOK_PORT" \
      /mutate-jobset-x-k8s-io-v1alpha2-jobset jobset.x-k8s.io v1alpha2 jobsets "CREATE" "$ca"
    webhook_yaml Validating jobset-validating-webhook-configuration vjobset.kb.io "$JOBSET_WEBHOOK_PORT" \
      /validate-jobset-x-k8s-io-v1alpha2-jobset jobset.x-k8s.io v1alpha2 jobsets "CREATE, UPDATE" "$ca"
    webhook_yaml Mutating kueue-trainjob-mutating-webhook-configuration mtrainjob.kb.io "$KUEUE_WEBHOOK_PORT" \
      /mutate-trainer-kubeflow-org-v1alpha1-trainjob trainer.kubeflow.org v1alpha1 trainjobs "CREATE" "$ca"
  } >"$CLUSTER_DIR/addon-webhooks.yaml"
  wait_until "jobset-controller /readyz" curl -fsS --max-time 5 "http://127.0.0.1:${JOBSET_HEALTH_PORT}/readyz" \
    || fail_up "jobset-controller did not become ready"
  wait_until "trainer-controller-manager /readyz" curl -fsS --max-time 5 "http://127.0.0.1:${TRAINER_HEALTH_PORT}/readyz" \
    || fail_up "trainer-controller-manager did not become ready"
  wait_until "kueue /readyz" curl -fsS --max-time 5 "http://127.0.0.1:${KUEUE_HEALTH_PORT}/readyz" \
    || fail_up "kueue did not become ready"
  kctl apply -f "$CLUSTER_DIR/addon-webhooks.yaml" >/dev/null || fail_up "registering the webhooks"
  # The Trainer's torch runtime, for TrainJobs that name `torch-distributed`.
  moddir="$(module_dir trainer github.com/kubeflow/trainer/v2)" || fail_up "trainer module source"
  kctl apply --server-side --force-conflicts -f "$moddir/manifests/base/runtimes/torch_distributed.yaml" >/dev/null \
    || fail_up "installing the torch-distributed ClusterTrainingRuntime"
}

# module_dir TOOLS-SUBDIR MODULE: the source folder of MODULE at the version that module pins
# (downloaded into the Go module cache when it is not there, e.g. binaries cached, modules not).
module_dir() {
  local dir
  dir="$(cd "$TOOLS_DIR/$1" && go mod download "$2" && go list -mod=readonly -m -f '{{.Dir}}' "$2")" || return 1
  [[ -n "$dir" && -d "$dir" ]] || return 1
  echo "$dir"
}

# webhook_yaml Mutating|Validating CONFIG-NAME WEBHOOK-NAME PORT PATH GROUP VERSION RESOURCE OPS CA
webhook_yaml() {
  cat <<EOF
---
apiVersion: admissionregistration.k8s.io/v1
kind: ${1}WebhookConfiguration
metadata:
  name: $2
webhooks:
- name: $3
  admissionReviewVersions: [v1]
  clientConfig:
    url: https://127.0.0.1:${4}${5}
    caBundle: ${10}
  failurePolicy: Fail
  sideEffects: None
  timeoutSeconds: 10
  rules:
  - apiGroups: [$6]
    apiVersions: [$7]
    operations: [$9]
    resources: [$8]
EOF
}


do_down() {
  load_ports
  local i all=("${COMPONENTS[@]}")
  [[ "$KUEUE_ENABLED" == 1 ]] || all+=("${ADDONS[@]}")
  for ((i = ${#all[@]} - 1; i >= 0; i--)); do
    stop_component "${all[$i]}"
  done
  # Keep the logs of the last run for post-mortems; everything else goes.
  rm -rf "$CLUSTER_DIR/data" "$CLUSTER_DIR/pki" "$CLUSTER_DIR/pids" "$CLUSTER_DIR"/*.kubeconfig \
    "$CLUSTER_DIR/kubeconfig" "$CLUSTER_DIR/ports.env" "$CLUSTER_DIR/nodes.yaml" \
    "$CLUSTER_DIR/kwok-logs.yaml"
}

cmd_restart_apiserver() {
  [[ -f "$CLUSTER_DIR/ports.env" ]] || die "the cluster is not up"
  load_ports
  log "restarting kube-apiserver"
  stop_component kube-apiserver
  # The new apiserver appends to logs/audit.log (no copy needed: a copy would count twice).
  start_apiserver
  wait_until "kube-apiserver /readyz" apiserver_ready || die "kube-apiserver did not become ready"
  log "kube-apiserver is back"
}

# Starts Kueue and the JobSet controller on a running cluster (tests that need them call this;
# a no-op when they run).
cmd_addons_up() {
  lock_cluster
  load_ports
  [[ -n "${APISERVER_PORT:-}" ]] && apiserver_ready || die "the cluster is not up: run e2e/cluster.sh up"
  local a all=1
  for a in "${ADDONS[@]}"; do component_pid "$a" >/dev/null || all=0; done
  if ((all)); then
    log "kueue, jobset-controller and trainer-controller-manager already running"
    return 0
  fi
  for a in "${ADDONS[@]}"; do stop_component "$a"; done
  have_addon_binaries || cmd_build_addons
  sed -i '/^\(KUEUE\|JOBSET\|TRAINER\)_/d' "$CLUSTER_DIR/ports.env"
  PICKED_PORTS="${ETCD_PORT} ${ETCD_PEER_PORT} ${APISERVER_PORT} ${KCM_PORT} ${SCHEDULER_PORT} ${KWOK_PORT}"
  ADDONS_ONLY=1
  start_addons
}

cmd_down() {
  lock_cluster
  do_down
  log "down: no component running, data removed (logs kept in $CLUSTER_DIR/logs)"
}

cmd_status_unlocked() {
  load_ports
  local c pid rc=0 port
  for c in "${COMPONENTS[@]}"; do
    case "$c" in
      etcd) port="${ETCD_PORT:-?}" ;;
      kube-apiserver) port="${APISERVER_PORT:-?}" ;;
      kube-controller-manager) port="${KCM_PORT:-?}" ;;
      kube-scheduler) port="${SCHEDULER_PORT:-?}" ;;
      kwok) port="${KWOK_PORT:-?}" ;;
      kueue) port="${KUEUE_HEALTH_PORT:-?}" ;;
      jobset-controller) port="${JOBSET_HEALTH_PORT:-?}" ;;
      trainer-controller-manager) port="${TRAINER_HEALTH_PORT:-?}" ;;
    esac
    if pid="$(component_pid "$c")"; then
      printf '  %-24s running  pid %-7s port %s\n' "$c" "$pid" "$port"
    else
      printf '  %-24s stopped\n' "$c"
      rc=1
    fi
  done
  if [[ -n "${APISERVER_PORT:-}" ]] && apiserver_ready 2>/dev/null; then
    printf '  %-24s ready    https://127.0.0.1:%s\n' "api /readyz" "$APISERVER_PORT"
    kctl get nodes -o custom-columns='NODE:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,GPU:.status.allocatable.nvidia\.com/gpu' 2>/dev/null | sed 's/^/  /' || true
  else
    printf '  %-24s not ready\n' "api /readyz"
    rc=1
  fi
  return $rc
}

cmd_status() {
  if cmd_status_unlocked; then
    echo "status: up (export KUBECONFIG=$CLUSTER_DIR/kubeconfig)"
  else
    echo "status: down or degraded"
    return 1
  fi
}

cmd_logs() {
  local c
  if [[ $# -gt 0 ]]; then
    tail -n "${LINES_TO_SHOW:-200}" "$CLUSTER_DIR/logs/$1.log"
    return
  fi
  for c in "${COMPONENTS[@]}"; do
    echo "===== $CLUSTER_DIR/logs/$c.log ====="
    tail -n "${LINES_TO_SHOW:-40}" "$CLUSTER_DIR/logs/$c.log" 2>/dev/null || echo "(none)"
  done
}

main() {
  case "${1:-}" in
    build) cmd_build; if [[ "$KUEUE_ENABLED" == 1 ]]; then cmd_build_addons; fi ;;
    up) cmd_up ;;
    addons-up) cmd_addons_up ;;
    restart-apiserver) cmd_restart_apiserver ;;
    down) cmd_down ;;
    status) cmd_status ;;
    logs) shift; cmd_logs "$@" ;;
    env) echo "export KUBECONFIG=$CLUSTER_DIR/kubeconfig" ;;
    bin-dir) echo "$BIN_DIR" ;;
    addon-bin-dir) echo "$ADDON_BIN_DIR" ;;
    *)
      sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'
      [[ -n "${1:-}" ]] && exit 2
      exit 0
      ;;
  esac
}

# One line, ending in exit: bash never reads past it, so editing this file while it runs is safe.
main "$@"; exit $?
