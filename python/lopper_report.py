"""Report intermediate metrics to Lopper (``metrics: {push: {}}``) -- dependency-free.

    from lopper_report import report

    for epoch in range(epochs):
        val_loss = train_one_epoch()
        if report(epoch, val_loss, val_acc=acc):   # like Optuna's trial.report + should_prune
            break                                  # pruned: stop now

``report`` posts ``{"step": step, "metrics": {<name>: value, **more}}`` to
``$LOPPER_REPORT_URL`` with ``Authorization: Bearer $LOPPER_TOKEN`` and returns True when the
trial has been pruned (the trainer should stop). ``<name>`` is ``objective=`` when given, else
``$LOPPER_METRIC``, else ``value`` -- which Lopper takes as the study's objective metric when
the objective's own name is not among the metrics. NaN is sent as ``"NaN"`` (kept by Lopper,
as Optuna keeps it); infinities are sent but ignored.

Without ``$LOPPER_REPORT_URL`` (e.g. running the trainer by hand) it does nothing and returns
False. Network trouble is retried a few times and then reported as "keep going" (False) on
stderr, so an operator restart never kills a training run.
"""

import json
import math
import os
import sys
import time
import urllib.error
import urllib.request

__all__ = ["report", "ReportError"]


class ReportError(RuntimeError):
    """The operator refused the report (bad token, unknown trial, malformed metrics)."""


def _num(v):
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def report(step, value, objective=None, timeout=10.0, retries=3, **more):
    """Report ``value`` of the objective at ``step``; True means "pruned: stop now"."""
    url = os.environ.get("LOPPER_REPORT_URL")
    if not url:
        return False
    token = os.environ.get("LOPPER_TOKEN", "")
    name = objective or os.environ.get("LOPPER_METRIC") or "value"
    metrics = {k: _num(v) for k, v in more.items()}
    metrics[name] = _num(value)
    body = json.dumps({"step": int(step), "metrics": metrics}).encode()
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + token},
    )
    delay = 0.5
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return bool(json.load(resp).get("prune", False))
        except urllib.error.HTTPError as e:
            try:
                answer = json.load(e)
            except Exception:  # noqa: BLE001 - any unreadable error body
                answer = {}
            if e.code == 409:  # the trial already finished
                return bool(answer.get("prune", True))
            if e.code in (400, 401, 404, 413):
                raise ReportError("lopper report refused (%d): %s" % (e.code, answer.get("error", e.reason)))
            err = "HTTP %d" % e.code
        except (urllib.error.URLError, OSError, ValueError) as e:
            err = str(e)
        if attempt < retries:
            time.sleep(delay)
            delay *= 2
    print("lopper_report: could not report step %s: %s" % (step, err), file=sys.stderr)
    return False
