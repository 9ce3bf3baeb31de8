"""NumPy/SciPy reference for the calibration methods and the newer metrics.

Reads one JSON object on stdin and writes one on stdout:
  {"logits": [[...]], "labels": [...]}        softmax model, or
  {"logits": [[...]], "targets": [[0/1...]]}  sigmoid (multi-label) model,
  with "bins": int, and optionally
  "l2": float            fit vector scaling (softmax) or per-label
                         temperature and Platt scaling (sigmoid) with that guard,
  "resamples": [[...]]   bootstrap index sets: the metrics of each and the
                         2.5/97.5 percentiles.
Written independently of the Go code from the definitions in its doc comments.
"""
import json
import sys

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit, log_softmax

d = json.load(sys.stdin)
z = np.array(d["logits"], dtype=np.float64)
n, k = z.shape
bins = d["bins"]
sigmoid = "targets" in d
if sigmoid:
    Y = np.array(d["targets"], dtype=np.float64)
else:
    y = np.array(d["labels"])
    Y = np.eye(k)[y]


def equal_width(conf, hit):
    edges = np.linspace(0, 1, bins + 1)
    ece, mce = 0.0, 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if lo == 0:
            m |= conf == 0
        if m.any():
            gap = abs(hit[m].mean() - conf[m].mean())
            ece += m.mean() * gap
            mce = max(mce, gap)
    return ece, mce


def equal_mass(conf, hit, ids):
    # sorted by confidence, ties by the event's index in the data
    order = np.lexsort((ids, conf))
    parts = np.array_split(order, min(bins, len(conf)))
    return sum(len(p) / len(conf) * abs(hit[p].mean() - conf[p].mean()) for p in parts)


def metrics(rows):
    zz, YY = z[rows], Y[rows]
    if sigmoid:
        p = expit(zz)
        nll = -(YY * log_expit(zz) + (1 - YY) * log_expit(-zz)).sum(1).mean()
        acc = ((p > 0.5) == (YY == 1)).mean()
        conf, hit = p.ravel(), YY.ravel()
        ids = (rows[:, None] * k + np.arange(k)).ravel()
    else:
        lp = log_softmax(zz, axis=1)
        p = np.exp(lp)
        yy = y[rows]
        nll = -lp[np.arange(len(rows)), yy].mean()
        acc = (p.argmax(1) == yy).mean()
        conf, hit = p.max(1), (p.argmax(1) == yy).astype(np.float64)
        ids = rows
    ece, mce = equal_width(conf, hit)
    class_ece = [equal_width(p[:, j], YY[:, j])[0] for j in range(k)]
    return {"accuracy": float(acc), "nll": float(nll), "brier": float(((p - YY) ** 2).sum(1).mean()),
            "ece": float(ece), "mce": float(mce), "adaptive_ece": float(equal_mass(conf, hit, ids)),
            "class_ece": [float(e) for e in class_ece], "classwise_ece": float(np.mean(class_ece))}


out = {"metrics": metrics(np.arange(n))}

if "l2" in d and not sigmoid:
    l2 = d["l2"]

    def f(x):
        a, b = x[:k], x[k:]
        lp = log_softmax(z * a + b, axis=1)
        r = np.exp(lp) - Y
        val = -lp[np.arange(n), y].mean() + l2 / 2 * (((a - 1) ** 2).sum() + (b ** 2).sum())
        grad = np.concatenate([(r * z).mean(0) + l2 * (a - 1), r.mean(0) + l2 * b])
        return val, grad

    x0 = np.concatenate([np.ones(k), np.zeros(k)])
    res = minimize(f, x0, jac=True, method="BFGS", options={"gtol": 1e-13, "maxiter": 10000})
    out["scale"], out["bias"] = res.x[:k].tolist(), res.x[k:].tolist()

if "l2" in d and sigmoid:
    l2 = d["l2"]

    def binary(zj, yj, bias):
        def f(x):
            a, b = x[0], (x[1] if bias else 0.0)
            u = a * zj + b
            r = expit(u) - yj
            val = -(yj * log_expit(u) + (1 - yj) * log_expit(-u)).mean() + l2 / 2 * ((a - 1) ** 2 + b ** 2)
            g = [(r * zj).mean() + l2 * (a - 1)] + ([r.mean() + l2 * b] if bias else [])
            return val, np.array(g)
        x0 = np.array([1.0, 0.0] if bias else [1.0])
        return minimize(f, x0, jac=True, method="BFGS", options={"gtol": 1e-13, "maxiter": 10000}).x

    out["temperatures"] = [1 / binary(z[:, j], Y[:, j], False)[0] for j in range(k)]
    platt = [binary(z[:, j], Y[:, j], True) for j in range(k)]
    out["platt_scale"] = [float(x[0]) for x in platt]
    out["platt_bias"] = [float(x[1]) for x in platt]
    out["temperature"] = 1 / binary(z.ravel(), Y.ravel(), False)[0]

if "resamples" in d:
    reps = [metrics(np.array(r)) for r in d["resamples"]]
    out["replicates"] = reps
    out["intervals"] = {key: [float(np.quantile([r[key] for r in reps], q)) for q in (0.025, 0.975)]
                        for key in ("nll", "ece", "adaptive_ece", "classwise_ece")}

print(json.dumps(out))
