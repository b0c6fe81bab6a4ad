#!/usr/bin/env python3
"""Scale and fault harness for the Lopper operator. Run through bench/scale.sh.

Against the local control plane (e2e/cluster.sh) with the release binary:
  - adds kwok GPU nodes, creates S push studies x M trials with P in parallel each;
  - runs `lopper controller` as its own process under its own identity (audited);
  - plays the trainers from outside the operator (this process: Python stdlib only): when a
    trial's pod runs it reads the trial's token Secret and posts one report per step every
    R seconds, stops on {"prune": true} or 409, and when the curve is done marks the pod
    finished (kwok's pod-succeed stage, via the lopper.dev/fake-exit-after annotation);
  - optionally SIGKILLs the operator K times and restarts the kube-apiserver once;
  - prints report latency, prune -> Job gone, the Trial -> Job -> pod -> Running breakdown,
    the operator's API requests per report by verb and resource (apiserver audit log of the
    operator's identity), peak RSS, CPU per report, GPU slot utilisation; and checks that
    nothing was lost or duplicated. Exit status 1 when a check fails.
"""

import argparse
import base64
import calendar
import http.client
import json
import math
import os
import queue
import random
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.environ.get("LOPPER_E2E_DIR", os.path.join(REPO, "e2e", ".cluster"))
GROUP = "lopper.dev/v1alpha1"


# ------------------------------------------------------------------------------------------
# A small Kubernetes client (client certificates from the admin kubeconfig)
# ------------------------------------------------------------------------------------------
class Kube:
    def __init__(self, kubeconfig):
        text = open(kubeconfig).read()

        def field(name):
            for line in text.splitlines():
                line = line.strip()
                if line.startswith(name + ":"):
                    return line.split(":", 1)[1].strip()
            raise SystemExit(f"{kubeconfig}: no {name}")

        url = urllib.parse.urlparse(field("server"))
        self.host, self.port = url.hostname, url.port
        tmp = tempfile.mkdtemp(prefix="lopper-scale-")
        paths = {}
        for k in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
            p = os.path.join(tmp, k)
            with open(p, "wb") as f:
                f.write(base64.b64decode(field(k)))
            paths[k] = p
        self.ctx = ssl.create_default_context(cafile=paths["certificate-authority-data"])
        self.ctx.load_cert_chain(paths["client-certificate-data"], paths["client-key-data"])
        self.local = threading.local()

    def conn(self, fresh=False):
        c = getattr(self.local, "c", None)
        if c is None or fresh:
            c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
            self.local.c = c
        return c

    def req(self, method, path, body=None, ctype="application/json"):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        for attempt in range(6):
            try:
                c = self.conn(fresh=attempt > 0)
                c.request(method, path, body=data, headers={"Content-Type": ctype})
                r = c.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else {})
            except (OSError, http.client.HTTPException, json.JSONDecodeError):
                time.sleep(min(2.0, 0.2 * (attempt + 1)))
        return 0, {}

    def watch(self, path, on_event, stop):
        """Lists then watches `path` until `stop` is set, calling on_event(type, obj, t).

        Watches resume from the last resourceVersion seen (bookmarks on; the server ends each
        watch after 60 s); on 410 Gone or an error it lists again, and an object known before
        but absent from the new list gets a DELETED event then (deleted while not watched).
        Any error (an apiserver restart) only restarts the loop: the thread never dies."""
        known = {}  # name -> last object seen
        rv = None
        while not stop.is_set():
            try:
                if rv is None:
                    code, lst = self.req("GET", path)
                    if code != 200:
                        time.sleep(0.5)
                        continue
                    now = time.time()
                    names = set()
                    for o in lst.get("items", []):
                        names.add(o["metadata"]["name"])
                        known[o["metadata"]["name"]] = o
                        on_event("ADDED", o, now)
                    for n in [n for n in known if n not in names]:
                        on_event("DELETED", known.pop(n), now)
                    rv = lst["metadata"]["resourceVersion"]
                c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=120)
                sep = "&" if "?" in path else "?"
                c.request("GET", f"{path}{sep}watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=60")
                r = c.getresponse()
                if r.status != 200:
                    r.read()
                    c.close()
                    rv = None
                    time.sleep(0.5)
                    continue
                buf = b""
                while not stop.is_set():
                    chunk = r.read1(65536)
                    if not chunk:
                        break  # the server ended this watch: resume from rv
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if not line.strip():
                            continue
                        ev = json.loads(line)
                        typ, o = ev.get("type"), ev.get("object") or {}
                        if typ == "ERROR":
                            raise ConnectionError(f"watch {path}: {o.get('message')}")  # 410 Gone: list again
                        rv = o["metadata"]["resourceVersion"]
                        if typ == "BOOKMARK":
                            continue
                        if typ == "DELETED":
                            known.pop(o["metadata"]["name"], None)
                        else:
                            known[o["metadata"]["name"]] = o
                        on_event(typ, o, time.time())
                c.close()
            except Exception as e:  # noqa: BLE001 -- an apiserver restart, a cut connection, 410: list again
                if not isinstance(e, (OSError, http.client.HTTPException, ConnectionError)):
                    print(f"  [watch {path}: {type(e).__name__}: {e}; listing again]", file=sys.stderr, flush=True)
                rv = None
                time.sleep(0.3)


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    f, c = math.floor(k), math.ceil(k)
    return xs[f] if f == c else xs[f] + (xs[c] - xs[f]) * (k - f)


def ms(x, nd=None):
    """Seconds to rounded milliseconds; None (JSON null) when there was nothing to measure."""
    return None if x is None or math.isnan(x) else round(x * 1000, nd)


# ------------------------------------------------------------------------------------------
# The operator process
# ------------------------------------------------------------------------------------------
class Operator:
    """`lopper controller` as a child process, supervised like a kubelet would: SIGKILLed and
    started again on request, started again (after 1 s) when it exits by itself. CPU time and
    peak RSS of every process that ended come from wait4()'s rusage (utime + stime of all its
    threads, ru_maxrss = its VmHWM); the live one's VmHWM is also sampled from /proc."""

    def __init__(self, binary, ns, port, log_path):
        self.binary, self.ns, self.port, self.log_path = binary, ns, port, log_path
        self.proc = None
        self.cpu_s = 0.0  # of processes that ended
        self.peak_kib = 0
        self.kills = 0
        self.exits = []  # (seconds since start, exit status) of exits nobody asked for
        self.t0 = time.time()
        self.lock = threading.Lock()

    def start(self):
        env = dict(os.environ, KUBECONFIG=os.path.join(CLUSTER, "operator.kubeconfig"),
                   RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "controller", "--port", str(self.port), "--namespace", self.ns,
                 "--lease-namespace", self.ns, "--report-url", f"http://127.0.0.1:{self.port}",
                 "--concurrency", "32"],
                stdout=log, stderr=log, env=env)

    def _reap(self, block):
        """wait4() the current process; True when it has ended (its rusage then counted)."""
        pid, status, ru = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        self.cpu_s += ru.ru_utime + ru.ru_stime
        self.peak_kib = max(self.peak_kib, ru.ru_maxrss)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return True

    def sample(self):
        with self.lock:
            if self.proc is None:
                return
            if self._reap(block=False):
                self.exits.append((round(time.time() - self.t0, 1), self.proc.returncode))
                print(f"  [operator exited by itself with status {self.proc.returncode}: started again in 1 s]", flush=True)
                time.sleep(1)
                self.start()
                return
            try:
                for line in open(f"/proc/{self.proc.pid}/status"):
                    if line.startswith("VmHWM:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            except OSError:
                pass

    def kill_and_restart(self):
        with self.lock:
            self.proc.send_signal(signal.SIGKILL)
            self._reap(block=True)
            self.kills += 1
            self.start()

    def stop(self):
        with self.lock:
            self.proc.send_signal(signal.SIGTERM)
            for _ in range(100):
                if self._reap(block=False):
                    break
                time.sleep(0.1)
            else:
                self.proc.send_signal(signal.SIGKILL)
                self._reap(block=True)
            self.proc = None

    def cpu_seconds(self):
        return self.cpu_s

    def cpu_now(self):
        """CPU seconds so far, the live process included (for a window of the run)."""
        with self.lock:
            live = 0.0
            if self.proc is not None:
                try:
                    with open(f"/proc/{self.proc.pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    live = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                except (OSError, ValueError, IndexError):
                    pass
            return self.cpu_s + live


# ------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------
def study_manifest(name, a):
    pruner = {"median": {"startupTrials": 3, "warmupSteps": 2}} if a.pruner == "median" else {a.pruner: {}}
    return {
        "apiVersion": GROUP, "kind": "Study", "metadata": {"name": name},
        "spec": {
            "objective": {"metric": "val_loss", "direction": "minimize"},
            "parameters": [{"name": "lr", "float": {"low": 1e-4, "high": 0.5, "log": True}}],
            "sampler": {"random": {"seed": 1}},
            "pruner": pruner,
            "maxTrials": a.trials, "parallelism": a.parallel,
            "metrics": {"push": {}},
            "trialTemplate": {"gpus": 1, "spec": {"backoffLimit": 0, "template": {
                # On this run's nodes only, and nobody else's pods on them: other tests
                # sharing the cluster count the GPUs of the two default nodes.
                "spec": {"restartPolicy": "Never",
                         "nodeSelector": {"lopper.dev/scale-run": a.namespace},
                         "tolerations": [{"key": "lopper.dev/scale-run", "operator": "Equal",
                                          "value": a.namespace, "effect": "NoSchedule"}],
                         "containers": [{"name": "trainer", "image": "fake.example/trainer:1"}]}}}},
        },
    }


def value(seed, step, steps):
    rnd = random.Random(seed * 1_000_003 + step)
    base = 0.1 + (seed % 97) / 97.0  # a trial's plateau: pruners prune the worse ones
    return base + 1.0 / (1.0 + step * 10.0 / max(steps, 1)) + rnd.uniform(-0.02, 0.02)


CONTROL_PLANE = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")


def control_plane_cpu():
    """CPU seconds so far of each control-plane process, by name, with its pid (a process
    restarted during the run, e.g. the apiserver with --restart-apiserver, is left out)."""
    out = {}
    for name in CONTROL_PLANE:
        try:
            with open(os.path.join(CLUSTER, "pids", f"{name}.pid")) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[name] = (pid, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
        except (OSError, ValueError, IndexError):
            continue
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", type=int, default=4)
    ap.add_argument("--trials", type=int, default=10, help="maxTrials per study")
    ap.add_argument("--parallel", type=int, default=4, help="parallelism per study")
    ap.add_argument("--steps", type=int, default=10, help="reported steps per trial")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between a trial's reports")
    ap.add_argument("--pruner", default="median",
                    choices=["median", "none", "percentile", "successiveHalving", "hyperband", "wilcoxon", "patient"],
                    help="median is {startupTrials: 3, warmupSteps: 2}; the others take their defaults")
    ap.add_argument("--kill", type=int, default=0, help="SIGKILL the operator this many times")
    ap.add_argument("--restart-apiserver", action="store_true")
    ap.add_argument("--gpus-per-node", type=int, default=64)
    ap.add_argument("--workers", type=int, default=48, help="reporting threads")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--port", type=int, default=18480)
    ap.add_argument("--namespace", default="lopper-scale")
    ap.add_argument("--lopper", default=os.path.join(REPO, "target", "release", "lopper"))
    ap.add_argument("--label", default="")
    ap.add_argument("--clean", action="store_true", help="remove the namespace and nodes even when a check failed")
    ap.add_argument("--out", default="", help="write per-report latencies and per-trial timestamps (JSON) here")
    a = ap.parse_args()

    kube = Kube(os.path.join(CLUSTER, "kubeconfig"))
    ns = a.namespace
    bindir = subprocess.check_output(["bash", os.path.join(REPO, "e2e", "cluster.sh"), "bin-dir"], text=True).strip()
    kubectl = [os.path.join(bindir, "kubectl"), "--kubeconfig", os.path.join(CLUSTER, "kubeconfig")]

    # -- setup -----------------------------------------------------------------------------
    kube.req("DELETE", f"/api/v1/namespaces/{ns}")
    for _ in range(240):
        if kube.req("GET", f"/api/v1/namespaces/{ns}")[0] == 404:
            break
        time.sleep(0.5)
    kube.req("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    subprocess.run(kubectl + ["apply", "--server-side", "--force-conflicts", "-f", os.path.join(REPO, "crds")],
                   check=True, stdout=subprocess.DEVNULL)
    slots = a.studies * a.parallel
    nodes = max(1, math.ceil(slots / a.gpus_per_node))
    node_names = [f"{ns}-gpu-{i}" for i in range(nodes)]
    for node in node_names:
        kube.req("DELETE", f"/api/v1/nodes/{node}")  # a node left by an interrupted run: its GPUs counted afresh
    for node in node_names:
        kube.req("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                         "labels": {"type": "kwok", "kubernetes.io/hostname": node, "nvidia.com/gpu.present": "true",
                                    "lopper.dev/scale-run": ns}},
            "spec": {"taints": [{"key": "lopper.dev/scale-run", "value": ns, "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "512", "memory": "4Ti", "pods": "1000", "nvidia.com/gpu": str(a.gpus_per_node)},
                       "allocatable": {"cpu": "512", "memory": "4Ti", "pods": "1000", "nvidia.com/gpu": str(a.gpus_per_node)}},
        })
    for _ in range(120):
        ready = 0
        for node in node_names:
            code, o = kube.req("GET", f"/api/v1/nodes/{node}")
            conds = (o.get("status") or {}).get("conditions") or [] if code == 200 else []
            ready += any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
        if ready == len(node_names):
            break
        time.sleep(0.5)
    else:
        raise SystemExit(f"kwok did not make the nodes {node_names} Ready")

    log_path = os.path.join(CLUSTER, "logs", f"scale-operator-{ns}.log")
    open(log_path, "w").close()
    op = Operator(a.lopper, ns, a.port, log_path)
    op.start()
    for _ in range(120):
        try:
            c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(0.5)

    # -- state from watches ----------------------------------------------------------------
    lock = threading.Lock()
    trials = {}   # name -> dict(created, running, phase, final_at, number, study)
    jobs = {}     # name -> dict(created, deleted, uids:set)
    pods = {}     # trial -> dict(name, running, ended)
    job_uids = {}  # trial (label) -> every Job uid seen for it
    stop = threading.Event()
    started = set()

    def on_trial(t, o, now):
        md, st = o["metadata"], o.get("status") or {}
        n = md["name"]
        with lock:
            d = trials.setdefault(n, {"created": now, "study": o["spec"]["study"], "number": o["spec"]["number"]})
            ph = st.get("phase")
            if ph == "Running" and "running" not in d:
                d["running"] = now
            if ph in ("Completed", "Pruned", "Failed") and "final_at" not in d:
                d["final_at"] = now
            d["phase"] = ph
            if t == "DELETED":
                d["deleted"] = True

    def on_job(t, o, now):
        md = o["metadata"]
        trial = (md.get("labels") or {}).get("lopper.dev/trial", md["name"])
        with lock:
            d = jobs.setdefault(md["name"], {"created": now, "uids": set(), "trial": trial})
            d["uids"].add(md["uid"])
            job_uids.setdefault(trial, set()).add(md["uid"])
            if t == "DELETED":
                d["deleted"] = now
            else:
                d.pop("deleted", None)

    def on_pod(t, o, now):
        md, st = o["metadata"], o.get("status") or {}
        trial = (md.get("labels") or {}).get("lopper.dev/trial")
        if not trial:
            return
        with lock:
            d = pods.setdefault(trial, {"name": md["name"]})
            d["name"] = md["name"]
            if st.get("phase") == "Running" and "running" not in d:
                d["running"] = now
            if (t == "DELETED" or st.get("phase") in ("Succeeded", "Failed")) and "ended" not in d:
                d["ended"] = now

    for path, fn in ((f"/apis/lopper.dev/v1alpha1/namespaces/{ns}/trials", on_trial),
                     (f"/apis/batch/v1/namespaces/{ns}/jobs", on_job),
                     (f"/api/v1/namespaces/{ns}/pods", on_pod)):
        threading.Thread(target=kube.watch, args=(path, fn, stop), daemon=True).start()

    # -- studies ---------------------------------------------------------------------------
    run_start = time.time()
    cp_start = control_plane_cpu()
    for i in range(a.studies):
        code, body = kube.req("POST", f"/apis/lopper.dev/v1alpha1/namespaces/{ns}/studies", study_manifest(f"s{i}", a))
        if code not in (200, 201):
            raise SystemExit(f"creating study s{i}: {code} {body}")

    # -- the trainers ----------------------------------------------------------------------
    latencies, prunes, answers = [], {}, {"200": 0}
    report_log = []    # (sent, latency) of each answered report
    first_report = {}  # trial -> when its first report was sent
    last_report = [time.time()]
    work = queue.PriorityQueue()  # (due, seq, trial, step)
    seq = [0]

    def schedule(due, trial, step):
        with lock:
            seq[0] += 1
            work.put((due, seq[0], trial, step))

    tokens = {}

    def token_of(trial):
        if trial not in tokens:
            code, s = kube.req("GET", f"/api/v1/namespaces/{ns}/secrets/{trial}")
            if code != 200:
                return None
            tokens[trial] = base64.b64decode(s["data"]["token"]).decode()
        return tokens[trial]

    def finish(trial):
        with lock:
            pod = pods.get(trial, {}).get("name")
        if pod:
            kube.req("PATCH", f"/api/v1/namespaces/{ns}/pods/{pod}",
                     {"metadata": {"annotations": {"lopper.dev/fake-exit-after": "0s"}}},
                     ctype="application/merge-patch+json")

    def reporter():
        local = threading.local()
        while not stop.is_set():
            try:
                due, _, trial, step = work.get(timeout=0.5)
            except queue.Empty:
                continue
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            tok = token_of(trial)
            if tok is None:
                schedule(time.time() + 0.5, trial, step)
                continue
            num = trials.get(trial, {}).get("number", 0)
            body = json.dumps({"step": step, "metrics": {"val_loss": value(zlib.crc32(trial.encode()) % 10007 + num, step, a.steps)}}).encode()
            t0 = time.time()
            code, ans = 0, {}
            for attempt in range(3):
                try:
                    c = getattr(local, "c", None)
                    if c is None or attempt:
                        c = local.c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
                    c.request("POST", f"/v1/namespaces/{ns}/trials/{trial}/report", body=body,
                              headers={"Content-Type": "application/json", "Authorization": f"Bearer {tok}"})
                    r = c.getresponse()
                    raw = r.read()
                    code = r.status
                    try:
                        ans = json.loads(raw) if raw else {}
                    except json.JSONDecodeError:
                        ans = {}  # an error answered in plain text: its status is what counts
                    break
                except (OSError, http.client.HTTPException):
                    time.sleep(0.2)
            t1 = time.time()
            with lock:
                answers[str(code)] = answers.get(str(code), 0) + 1
                last_report[0] = t1
            if code == 200:
                latencies.append(t1 - t0)
                with lock:
                    report_log.append((t0, t1 - t0))
                    first_report.setdefault(trial, t0)
                if ans.get("prune"):
                    with lock:
                        prunes[trial] = (t0, t1)  # the pruned report sent, its answer {"prune": true}
                elif step + 1 < a.steps:
                    schedule(due + a.interval, trial, step + 1)
                else:
                    finish(trial)
            elif code == 409:
                pass  # finished (pruned or failed): the trainer stops
            elif code == 401:
                tokens.pop(trial, None)  # read the Secret again, then retry this step
                schedule(time.time() + 0.5, trial, step)
            else:
                # operator restarting or API unavailable: retry this step
                schedule(time.time() + 0.5, trial, step)

    for _ in range(a.workers):
        threading.Thread(target=reporter, daemon=True).start()

    def starter():
        while not stop.is_set():
            with lock:
                ready = [t for t, d in pods.items() if "running" in d and "ended" not in d and t not in started]
                for t in ready:
                    started.add(t)
            for t in ready:
                schedule(time.time(), t, 0)
            time.sleep(0.1)

    threading.Thread(target=starter, daemon=True).start()

    cpu_samples = []  # (time, operator CPU s, control plane {name: (pid, CPU s)})

    def sampler():
        n = 0
        while not stop.is_set():
            op.sample()
            if n % 2 == 0:
                cpu_samples.append((time.time(), op.cpu_now(), control_plane_cpu()))
            n += 1
            time.sleep(0.5)

    threading.Thread(target=sampler, daemon=True).start()

    # -- faults ----------------------------------------------------------------------------
    # At random (seeded) points of the run's progress -- the share of all trials that are
    # terminal, 5 % to 80 % -- so that they land mid-run whatever the speed of the machine.
    total = a.studies * a.trials
    faults = []
    rng = random.Random(7)
    for _ in range(a.kill):
        faults.append((rng.uniform(0.05, 0.8), "kill"))
    if a.restart_apiserver:
        faults.append((0.5, "apiserver"))
    faults.sort()
    done_faults = {"kill": 0, "apiserver": 0}

    def progress():
        with lock:
            return sum(d.get("phase") in ("Completed", "Pruned", "Failed") for d in trials.values()) / total

    def fault_runner():
        for at, kind in faults:
            while progress() < at and not stop.is_set():
                time.sleep(0.1)
            if stop.is_set():
                return
            if kind == "kill":
                op.kill_and_restart()
                print(f"  [{time.time() - run_start:6.1f}s, {progress():.0%} done] operator SIGKILLed and restarted", flush=True)
            else:
                t = time.time()
                subprocess.run(["bash", os.path.join(REPO, "e2e", "cluster.sh"), "restart-apiserver"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                print(f"  [{t - run_start:6.1f}s, {progress():.0%} done] kube-apiserver restarted "
                      f"(down and back in {time.time() - t:.1f} s)", flush=True)
            done_faults[kind] += 1

    threading.Thread(target=fault_runner, daemon=True).start()

    # -- wait for the end -------------------------------------------------------------------
    done = False
    while time.time() - run_start < a.timeout:
        time.sleep(1)
        code, lst = kube.req("GET", f"/apis/lopper.dev/v1alpha1/namespaces/{ns}/studies")
        if code == 200:
            phases = [(s.get("status") or {}).get("phase") for s in lst["items"]]
            if len(phases) == a.studies and all(p in ("Succeeded", "Failed") for p in phases):
                with lock:
                    live = [t for t, d in trials.items() if d.get("phase") not in ("Completed", "Pruned", "Failed")]
                if not live:
                    done = True
                    break
    run_end = time.time()
    cp_end = control_plane_cpu()
    # Let the Job deletions of the last prunes arrive (up to 30 s; the check below fails on what is left).
    for _ in range(60):
        with lock:
            pending = [t for t in prunes if t in jobs and "deleted" not in jobs[t]]
        if not pending:
            break
        time.sleep(0.5)
    # Server-side report latency, from the operator's own histogram (since its last start):
    # what the operator takes, without the load generator's own scheduling in it.
    server = {}
    try:
        c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        buckets = []
        for line in text.splitlines():
            if line.startswith('lopper_report_duration_seconds_bucket{code="200"'):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
        buckets.sort()
        total = buckets[-1][1] if buckets else 0

        def hq(q):
            want, prev_le, prev_n = q * total, 0.0, 0.0
            for le, n in buckets:
                if n >= want:
                    if le == float("inf"):
                        return prev_le
                    return prev_le + (le - prev_le) * ((want - prev_n) / max(n - prev_n, 1e-9))
                prev_le, prev_n = le, n
            return float("nan")

        if total:
            within = next((n for le, n in buckets if le == 0.1), 0)
            server = {"server_reports": int(total), "server_p50_ms": round(hq(0.5) * 1000, 1),
                      "server_p99_ms": round(hq(0.99) * 1000, 1),
                      "server_within_100ms": round(within / total, 4)}
    except (OSError, ValueError, IndexError):
        pass
    stop.set()
    op.stop()

    # -- results ---------------------------------------------------------------------------
    failures = []
    if not done:
        failures.append(f"not finished within {a.timeout:.0f} s")
    if done_faults["kill"] < a.kill or done_faults["apiserver"] < int(a.restart_apiserver):
        failures.append(f"faults missed: {done_faults['kill']} of {a.kill} SIGKILLs, "
                        f"{done_faults['apiserver']} of {int(a.restart_apiserver)} apiserver restarts")
    code, tl = kube.req("GET", f"/apis/lopper.dev/v1alpha1/namespaces/{ns}/trials")
    code2, jl = kube.req("GET", f"/apis/batch/v1/namespaces/{ns}/jobs")
    by_study = {}
    final = {}
    code3, sl = kube.req("GET", f"/apis/lopper.dev/v1alpha1/namespaces/{ns}/studies")
    study_phase = {s_["metadata"]["name"]: (s_.get("status") or {}).get("phase") for s_ in sl.get("items", [])}
    open_studies = [f"s{i}={study_phase.get(f's{i}')}" for i in range(a.studies)
                    if study_phase.get(f"s{i}") not in ("Succeeded", "Failed")]
    if open_studies:
        failures.append(f"studies not terminal: {open_studies[:5]}")
    for t in tl.get("items", []):
        by_study.setdefault(t["spec"]["study"], []).append(t["spec"]["number"])
        final[t["metadata"]["name"]] = (t.get("status") or {}).get("phase")
    for i in range(a.studies):
        nums = sorted(by_study.get(f"s{i}", []))
        if nums != list(range(a.trials)):
            failures.append(f"study s{i}: trial numbers {nums[:5]}...{nums[-3:]} ({len(nums)}), want 0..{a.trials - 1}")
    nonterminal = [n for n, p in final.items() if p not in ("Completed", "Pruned", "Failed")]
    if nonterminal:
        failures.append(f"{len(nonterminal)} trials not terminal: {nonterminal[:5]}")
    live_jobs = {j["metadata"]["name"]: j for j in jl.get("items", [])}
    job_trial = {n: (j["metadata"].get("labels") or {}).get("lopper.dev/trial", n) for n, j in live_jobs.items()}
    pruned_with_job = sorted({t for t in job_trial.values() if final.get(t) == "Pruned"})
    if pruned_with_job:
        failures.append(f"pruned trials whose Job is still there 30 s after the run: {pruned_with_job[:5]}")
    orphans = [n for n, t in job_trial.items() if t not in final]
    if orphans:
        failures.append(f"Jobs without their Trial: {orphans[:5]}")
    with lock:
        doubles = [n for n, u in job_uids.items() if len(u) > 1]
        late = [n for n, d in trials.items() if d.get("final_at", run_end) > last_report[0] + 60]
    if doubles:
        failures.append(f"trials that had two Jobs: {doubles[:5]}")
    if late:
        failures.append(f"trials non-terminal 60 s after the last report: {late[:5]}")

    # API requests of the operator: the apiserver's audit log (e2e/cluster.sh audits the identity
    # lopper-operator only, at Metadata level), this run's namespace and time window, each auditID once.
    # The steady state: from when every trial created before the first one finished has been
    # reporting for one interval, to that first finish. No trial is created or ends in it, so
    # what it costs is what reports cost (the lifecycle of trials is outside it).
    with lock:
        finals = [d["final_at"] for d in trials.values() if "final_at" in d]
        first_final = min(finals) if finals else run_end
        early = [n for n, d in trials.items() if d["created"] < first_final]
        starts = [first_report.get(n) for n in early]
    w_start = (max(starts) + a.interval) if early and None not in starts else None
    w_end = first_final - 1.0
    steady_window = (w_start, w_end) if w_start is not None and w_end - w_start >= 2 * a.interval else None
    counts_w = {}
    counts, errors, seen_ids = {}, {}, set()
    ns_key = f'"namespace":"{ns}"'
    logdir = os.path.join(CLUSTER, "logs")
    for p in sorted(os.path.join(logdir, f) for f in os.listdir(logdir) if f.startswith("audit")):
        with open(p, errors="replace") as fh:
            for line in fh:
                if ns_key not in line or '"lopper-operator"' not in line:
                    continue
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if e.get("stage") != "ResponseComplete" or e.get("user", {}).get("username") != "lopper-operator":
                    continue
                ref = e.get("objectRef") or {}
                if ref.get("namespace") != ns or e.get("auditID") in seen_ids:
                    continue
                seen_ids.add(e.get("auditID"))
                ts = e.get("requestReceivedTimestamp", "")
                try:
                    t = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + ts[19:].rstrip("Z") if ts[19:20] == "." else 0)
                except ValueError:
                    continue
                if t < run_start - 1 or t > run_end + 1:
                    continue
                res = ref.get("resource", "?") + ("/" + ref["subresource"] if ref.get("subresource") else "")
                key = f"{e.get('verb')} {res}"
                counts[key] = counts.get(key, 0) + 1
                if steady_window and steady_window[0] <= t <= steady_window[1]:
                    counts_w[key] = counts_w.get(key, 0) + 1
                code_ = (e.get("responseStatus") or {}).get("code", 0)
                if code_ >= 400:
                    errors[f"{key} {code_}"] = errors.get(f"{key} {code_}", 0) + 1
    reports = len(latencies)
    total_req = sum(counts.values())
    steady = {k: v for k, v in counts.items() if not k.startswith(("list ", "watch "))}
    # Leader election renews its Lease every few seconds whatever the load: not a per-report cost.
    per_report = {k: v for k, v in steady.items() if not k.endswith(" leases")}
    with lock:
        # to the Job's DELETED event (watch), from the answer (negative: deleted before answering)
        # and from the moment the pruned report was sent
        gone = [jobs[t]["deleted"] - at[1] for t, at in prunes.items() if t in jobs and "deleted" in jobs[t]]
        gone_sent = [jobs[t]["deleted"] - at[0] for t, at in prunes.items() if t in jobs and "deleted" in jobs[t]]
        tj = [jobs[n]["created"] - d["created"] for n, d in trials.items() if n in jobs]
        jp = [pods[n]["running"] - jobs[n]["created"] for n in trials if n in jobs and "running" in pods.get(n, {})]
        pr = [d["running"] - pods[n]["running"] for n, d in trials.items() if "running" in d and "running" in pods.get(n, {})]
        busy = sum(min(d.get("ended", run_end), run_end) - d["running"] for d in pods.values() if "running" in d)
    wall = run_end - run_start
    cpu = op.cpu_seconds()
    cp_ms = {n: round((cp_end[n][1] - cp_start[n][1]) * 1000 / max(len(latencies), 1), 3)
             for n in cp_start if n in cp_end and cp_end[n][0] == cp_start[n][0]}
    steady_out = None
    if steady_window:
        ws, we = steady_window
        with lock:
            lat_w = [l for t0, l in report_log if ws <= t0 <= we]
        inside = [smp for smp in cpu_samples if ws <= smp[0] <= we]
        req_w = {k: v for k, v in counts_w.items() if not k.startswith(("list ", "watch ")) and not k.endswith(" leases")}
        steady_out = {"from_s": round(ws - run_start, 1), "to_s": round(we - run_start, 1), "reports": len(lat_w),
                      "report_p50_ms": ms(pct(lat_w, 50), 1), "report_p99_ms": ms(pct(lat_w, 99), 1),
                      "within_100ms": round(sum(l <= 0.1 for l in lat_w) / max(len(lat_w), 1), 4),
                      "api_requests_per_report": round(sum(counts_w.values()) / max(len(lat_w), 1), 3),
                      "api_requests_per_report_no_list_watch_lease": round(sum(req_w.values()) / max(len(lat_w), 1), 3),
                      "api_requests_by_verb": dict(sorted(counts_w.items(), key=lambda kv: -kv[1]))}
        if len(inside) >= 2:
            (t_a, cpu_a, cp_a), (t_b, cpu_b, cp_b) = inside[0], inside[-1]
            with lock:
                n_ab = sum(1 for t0, _ in report_log if t_a <= t0 <= t_b)
            steady_out["operator_cpu_ms_per_report"] = round((cpu_b - cpu_a) * 1000 / max(n_ab, 1), 3)
            steady_out["control_plane_cpu_ms_per_report"] = {
                n: round((cp_b[n][1] - cp_a[n][1]) * 1000 / max(n_ab, 1), 3)
                for n in cp_a if n in cp_b and cp_b[n][0] == cp_a[n][0]}
    summary = {
        "label": a.label, "studies": a.studies, "maxTrials": a.trials, "parallel": a.parallel,
        "live": slots, "steps": a.steps, "interval_s": a.interval, "kills": op.kills, "operator_exits": op.exits,
        "apiserver_restarts": done_faults["apiserver"], "wall_s": round(wall, 1), "reports": reports,
        "answers": answers, "report_p50_ms": ms(pct(latencies, 50), 1),
        "report_p99_ms": ms(pct(latencies, 99), 1), **server, "prunes": len(prunes),
        "prune_to_job_gone_p50_ms": ms(pct(gone, 50)), "prune_to_job_gone_p99_ms": ms(pct(gone, 99)),
        "report_sent_to_job_gone_p50_ms": ms(pct(gone_sent, 50)), "report_sent_to_job_gone_p99_ms": ms(pct(gone_sent, 99)),
        "trial_to_job_p50_ms": ms(pct(tj, 50)), "trial_to_job_p99_ms": ms(pct(tj, 99)),
        "job_to_pod_running_p50_ms": ms(pct(jp, 50)), "job_to_pod_running_p99_ms": ms(pct(jp, 99)),
        "pod_to_trial_running_p50_ms": ms(pct(pr, 50)), "pod_to_trial_running_p99_ms": ms(pct(pr, 99)),
        "api_requests": total_req, "api_requests_per_report": round(total_req / max(reports, 1), 3),
        "api_requests_per_report_no_list_watch": round(sum(steady.values()) / max(reports, 1), 3),
        "api_requests_per_report_no_list_watch_lease": round(sum(per_report.values()) / max(reports, 1), 3),
        "api_requests_by_verb": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
        "api_errors_by_verb_code": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        "operator_peak_rss_mib": round(op.peak_kib / 1024, 1),
        "operator_cpu_ms_per_report": round(cpu * 1000 / max(reports, 1), 3),
        "control_plane_cpu_ms_per_report": cp_ms,
        "steady": steady_out,
        "gpu_slot_utilisation": round(busy / (slots * wall), 3) if wall > 0 else None,
        "gpu_node_utilisation": round(busy / (nodes * a.gpus_per_node * wall), 3) if wall > 0 else None,
        "lopper": a.lopper, "loadavg_1m_end": round(os.getloadavg()[0], 2),
        "checks": "ok" if not failures else failures,
    }
    print()
    print(f"run: {a.studies} studies x {a.trials} trials, {slots} live, {a.steps} steps every {a.interval}s, "
          f"{op.kills} SIGKILLs{', apiserver restarted' if done_faults['apiserver'] else ''}: {wall:.0f} s")
    print(f"  reports                 {reports} (answers {answers})")
    if op.exits:
        print(f"  operator exited by itself (restarted): {op.exits} (seconds, status)")
    print(f"  report latency          p50 {summary['report_p50_ms']} ms, p99 {summary['report_p99_ms']} ms")
    if server:
        print(f"    in the operator       p50 {server['server_p50_ms']} ms, p99 {server['server_p99_ms']} ms, "
              f"{server['server_within_100ms'] * 100:.1f}% within 100 ms (its histogram since its last start, "
              f"{server['server_reports']} reports)")
    print(f"  prune -> Job gone       p50 {summary['prune_to_job_gone_p50_ms']} ms, p99 {summary['prune_to_job_gone_p99_ms']} ms ({len(gone)} of {len(prunes)} prunes; from the pruned report sent: p50 {summary['report_sent_to_job_gone_p50_ms']} ms, p99 {summary['report_sent_to_job_gone_p99_ms']} ms)")
    print(f"  Trial -> Job            p50 {summary['trial_to_job_p50_ms']} ms, p99 {summary['trial_to_job_p99_ms']} ms")
    print(f"  Job -> pod Running      p50 {summary['job_to_pod_running_p50_ms']} ms, p99 {summary['job_to_pod_running_p99_ms']} ms")
    print(f"  pod -> Trial Running    p50 {summary['pod_to_trial_running_p50_ms']} ms, p99 {summary['pod_to_trial_running_p99_ms']} ms")
    print(f"  operator API requests   {total_req} = {summary['api_requests_per_report']} per report "
          f"({summary['api_requests_per_report_no_list_watch']} without list/watch, "
          f"{summary['api_requests_per_report_no_list_watch_lease']} without list/watch/leases)")
    for k, v in list(summary["api_requests_by_verb"].items())[:16]:
        print(f"      {k:<28} {v:>7}  ({v / max(reports, 1):.3f} per report)")
    if errors:
        print("    of which answered with an error: " + ", ".join(f"{k}: {v}" for k, v in summary["api_errors_by_verb_code"].items()))
    print(f"  operator peak RSS       {summary['operator_peak_rss_mib']} MiB")
    print(f"  operator CPU            {cpu:.1f} s = {summary['operator_cpu_ms_per_report']} ms per report")
    if cp_ms:
        print("  control plane CPU       " + ", ".join(f"{n} {v} ms" for n, v in cp_ms.items()) + " per report")
    if steady_out:
        so = steady_out
        print(f"  steady state            {so['to_s'] - so['from_s']:.0f} s (from {so['from_s']} s to {so['to_s']} s of the run): every trial "
              f"reporting, none created or finished")
        print(f"    reports               {so['reports']}, p50 {so['report_p50_ms']} ms, p99 {so['report_p99_ms']} ms, "
              f"{so['within_100ms'] * 100:.1f}% within 100 ms")
        print(f"    API requests          {so['api_requests_per_report']} per report "
              f"({so['api_requests_per_report_no_list_watch_lease']} without list/watch/leases): "
              + ", ".join(f"{k} {v}" for k, v in so["api_requests_by_verb"].items()))
        if "operator_cpu_ms_per_report" in so:
            print(f"    CPU per report        operator {so['operator_cpu_ms_per_report']} ms; "
                  + ", ".join(f"{n} {v} ms" for n, v in so["control_plane_cpu_ms_per_report"].items()))
    else:
        print("  steady state            none (a trial finished before every trial was reporting: use longer curves, e.g. --steady)")
    print(f"  GPU slot utilisation    {summary['gpu_slot_utilisation']} (pod-Running GPU-seconds / (studies x parallelism x wall); "
          f"{summary['gpu_node_utilisation']} of the {nodes * a.gpus_per_node} fake GPUs)")
    print("  checks                  " + ("ok" if not failures else "FAILED:\n    " + "\n    ".join(failures)))
    if a.out:
        with lock:
            detail = {"summary": summary, "report_latencies_s": latencies, "prune_to_job_gone_s": gone,
                      "trials": {n: {"study": d["study"], "number": d["number"], "phase": final.get(n),
                                     "trial_created": d["created"], "job_created": jobs.get(n, {}).get("created"),
                                     "pod_running": pods.get(n, {}).get("running"), "trial_running": d.get("running"),
                                     "pod_ended": pods.get(n, {}).get("ended"), "trial_final": d.get("final_at")}
                                 for n, d in trials.items()}}
        with open(a.out, "w") as f:
            json.dump(detail, f)
    print("SUMMARY " + json.dumps(summary))
    if failures and not a.clean:
        print(f"(left for a look: namespace {ns}, nodes {node_names[0]}.., operator log {log_path}; the next run removes them)")
    else:
        kube.req("DELETE", f"/api/v1/namespaces/{ns}")
        for node in node_names:
            kube.req("DELETE", f"/api/v1/nodes/{node}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
