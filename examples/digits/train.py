#!/usr/bin/env python3
"""Trains scikit-learn's MLPClassifier on the bundled digits data set, epoch by epoch.

Each epoch is one `partial_fit` pass over the training split in mini-batches; after it the
trainer prints a Katib-style line `epoch=N val_loss=... val_acc=...` that Lopper parses
(metrics: logs, format keyValue). No download: the digits data ship with scikit-learn.

Parameters come from the command line (the Study's args template); `momentum`, a
conditional parameter active only for the sgd solver, comes from LOPPER_PARAM_MOMENTUM
(set by Lopper for every active parameter) because an inactive parameter has no value to
substitute into args.
"""
import argparse
import os
import sys
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--alpha", type=float, default=1e-4)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--solver", choices=["adam", "sgd"], default="adam")
    p.add_argument("--momentum", type=float,
                   default=float(os.environ.get("LOPPER_PARAM_MOMENTUM", "0.9")))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    classes = np.unique(y)

    kwargs = dict(hidden_layer_sizes=(a.hidden,), alpha=a.alpha, batch_size=a.batch,
                  learning_rate_init=a.lr, solver=a.solver, random_state=a.seed)
    if a.solver == "sgd":
        kwargs["momentum"] = a.momentum
    model = MLPClassifier(**kwargs)
    rng = np.random.RandomState(a.seed)
    warnings.simplefilter("ignore", ConvergenceWarning)
    for epoch in range(a.epochs):
        order = rng.permutation(len(X_train))
        model.partial_fit(X_train[order], y_train[order], classes=classes)
        proba = model.predict_proba(X_val)
        if not np.all(np.isfinite(proba)):
            print(f"epoch={epoch} val_loss=nan val_acc=0", flush=True)
            continue
        val_loss = log_loss(y_val, proba, labels=classes)
        val_acc = float(np.mean(proba.argmax(axis=1) == y_val))
        print(f"epoch={epoch} val_loss={val_loss:.6f} val_acc={val_acc:.4f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
