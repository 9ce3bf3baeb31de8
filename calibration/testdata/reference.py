"""NumPy/SciPy reference for calibration metrics and the temperature fit.

Reads {"logits": [[...]], "labels": [...], "t": float, "bins": int} on stdin,
writes the metrics at t, and the fitted temperature, as JSON on stdout.
"""
import json
import sys

import numpy as np
from scipy.optimize import brentq
from scipy.special import log_softmax

d = json.load(sys.stdin)
z = np.array(d["logits"], dtype=np.float64)
y = np.array(d["labels"])
n, k = z.shape


def metrics(t, bins):
    lp = log_softmax(z / t, axis=1)
    p = np.exp(lp)
    conf, pred = p.max(1), p.argmax(1)
    onehot = np.eye(k)[y]
    edges = np.linspace(0, 1, bins + 1)
    ece, mce = 0.0, 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if lo == 0:
            m |= conf == 0
        if m.any():
            gap = abs((pred[m] == y[m]).mean() - conf[m].mean())
            ece += m.mean() * gap
            mce = max(mce, gap)
    return {"accuracy": float((pred == y).mean()), "nll": float(-lp[np.arange(n), y].mean()),
            "brier": float(((p - onehot) ** 2).sum(1).mean()), "ece": float(ece), "mce": float(mce)}


def dnll(beta):
    p = np.exp(log_softmax(z * beta, axis=1))
    return float(((p * z).sum(1) - z[np.arange(n), y]).mean())


beta = brentq(dnll, 1e-3, 1e3, xtol=1e-15, rtol=1e-15)
print(json.dumps({"metrics": metrics(d["t"], d["bins"]), "t": 1 / beta}))
