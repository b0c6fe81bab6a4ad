#!/usr/bin/env python3
"""The digits trainer of examples/digits, writing its metrics as TensorBoard events only.

scikit-learn's MLPClassifier on the bundled digits data, one `partial_fit` pass per epoch;
after each epoch `val_loss` and `val_acc` go to a tensorboardX SummaryWriter, nothing to
stdout. Lopper reads them from the event files (metrics: tensorboard) through its sidecar on
a cluster, or by following the folder itself under `lopper run`. The folder is the study's
`spec.metrics.tensorboard.dir`, which both give the trainer as LOPPER_METRICS_PATH.
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
from tensorboardX import SummaryWriter


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--logdir", default=os.environ.get("LOPPER_METRICS_PATH", "runs"))
    a = p.parse_args()

    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    classes = np.unique(y)
    model = MLPClassifier(hidden_layer_sizes=(a.hidden,), learning_rate_init=a.lr,
                          batch_size=64, random_state=0)
    rng = np.random.RandomState(0)
    warnings.simplefilter("ignore", ConvergenceWarning)
    # flush_secs: events reach the file within a second (tensorboardX buffers otherwise).
    writer = SummaryWriter(logdir=a.logdir, flush_secs=1)
    for epoch in range(a.epochs):
        order = rng.permutation(len(X_train))
        model.partial_fit(X_train[order], y_train[order], classes=classes)
        proba = model.predict_proba(X_val)
        val_loss = (log_loss(y_val, proba, labels=classes)
                    if np.all(np.isfinite(proba)) else float("nan"))
        writer.add_scalar("val_loss", val_loss, epoch)
        writer.add_scalar("val_acc", float(np.mean(proba.argmax(axis=1) == y_val)), epoch)
        writer.flush()
    writer.close()


if __name__ == "__main__":
    sys.exit(main())
