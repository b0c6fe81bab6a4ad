#!/usr/bin/env python3
"""A dependency-free trainer that "trains" in milliseconds, for smoke tests and demos.

The loss at epoch e is (x-2)^2 + (y+1)^2 + 10/(e+1): minimum 0 at x=2, y=-1, decreasing
epoch by epoch, so poor (x, y) are visibly hopeless early and a pruner can cut them.

Prints Katib-style key=value lines (`epoch=3 loss=1.25`) on stdout, or reports them to
LOPPER_REPORT_URL (the push endpoint) with --report push.

Test hooks (all optional): --sleep seconds per epoch; --crash (or QUADRATIC_CRASH=1, or
QUADRATIC_CRASH_IF_X_ABOVE=v) exits non-zero with a traceback on stderr; --child starts a
grandchild process in the same process group; --pid-dir writes <trial>.pid files there;
--ignore-sigterm makes SIGKILL necessary.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request


def push(step, loss):
    url = os.environ["LOPPER_REPORT_URL"]
    body = json.dumps({"step": step, "metrics": {"loss": loss}}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "Authorization": "Bearer " + os.environ.get("LOPPER_TOKEN", ""),
    })
    with urllib.request.urlopen(req, timeout=10) as resp:
        return bool(json.load(resp).get("prune"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float, default=0.0)
    p.add_argument("--y", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--crash", action="store_true")
    p.add_argument("--child", action="store_true")
    p.add_argument("--pid-dir")
    p.add_argument("--ignore-sigterm", action="store_true")
    p.add_argument("--report", choices=["logs", "push"], default="logs")
    a = p.parse_args()

    if a.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    trial = os.environ.get("LOPPER_TRIAL", "trial")
    if a.pid_dir:
        with open(os.path.join(a.pid_dir, trial + ".pid"), "w") as f:
            f.write(str(os.getpid()))
    if a.child:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        if a.pid_dir:
            with open(os.path.join(a.pid_dir, trial + ".child.pid"), "w") as f:
                f.write(str(child.pid))

    crash = a.crash or os.environ.get("QUADRATIC_CRASH") == "1"
    above = os.environ.get("QUADRATIC_CRASH_IF_X_ABOVE")
    if above is not None and a.x > float(above):
        crash = True

    base = (a.x - 2.0) ** 2 + (a.y + 1.0) ** 2
    print(f"starting {trial} x={a.x} y={a.y}", flush=True)
    for epoch in range(a.epochs):
        if crash and epoch == 2:
            print("Traceback (most recent call last):", file=sys.stderr)
            print('  File "train.py", line 1, in <module>', file=sys.stderr)
            print("RuntimeError: simulated crash at epoch 2", file=sys.stderr, flush=True)
            sys.exit(3)
        loss = base + 10.0 / (epoch + 1)
        if a.report == "push":
            if push(epoch, loss):
                print(f"pruned at epoch {epoch}", flush=True)
                return
        else:
            print(f"epoch={epoch} loss={loss:.6f}", flush=True)
        if a.sleep:
            time.sleep(a.sleep)


if __name__ == "__main__":
    main()
