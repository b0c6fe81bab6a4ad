"""A dependency-free trainer for `metrics: {push: {}}`: a simulated learning curve whose floor
depends on the learning rate and width, reported each epoch with lopper_report.report().

    python3 train.py --lr 0.01 --hidden 64 --epochs 20

Run by hand (no $LOPPER_REPORT_URL) it just prints the curve; under Lopper (`lopper run
study.yaml` or the operator) it stops as soon as the trial is pruned.
"""

import argparse
import math
import os
import sys
import time

# lopper_report.py lives in the repository's python/ folder; in an image, copy it next to this file.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lopper_report import report  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--hidden", type=int, required=True)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--sleep", type=float, default=0.0, help="seconds per epoch")
    a = ap.parse_args()

    floor = 0.05 + 0.4 * abs(math.log10(a.lr) + 2.0) / 2.0 + 1.6 / a.hidden
    for epoch in range(a.epochs):
        val_loss = floor + (1.0 - floor) * math.exp(-0.3 * (epoch + 1))
        val_acc = 1.0 - val_loss / 2.0
        print(f"epoch={epoch} val_loss={val_loss:.5f} val_acc={val_acc:.4f}", flush=True)
        if report(epoch, val_loss, objective="val_loss", val_acc=val_acc):
            print(f"pruned at epoch {epoch}", flush=True)
            return
        time.sleep(a.sleep)


if __name__ == "__main__":
    main()
