"""Plain-NumPy versions of the workload models, written independently of metacc.

Forward passes and hand-written backpropagation for the MLPs, so that values
computed by lowering .meta programs have an outside oracle.
"""
from __future__ import annotations

import numpy as np

NET = ("w1", "b1", "w2", "b2", "w3", "b3")

ACTS = {
    "relu": (lambda z: np.maximum(z, 0), lambda z, h: (z > 0).astype(z.dtype)),
    "tanh": (np.tanh, lambda z, h: 1 - h ** 2),
}


def init_net(rng, sizes, scale="he"):
    p = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
        p[f"w{i}"] = rng.normal(size=(a, b)) * np.sqrt(2.0 / a)
        p[f"b{i}"] = rng.normal(size=(b,)) * 0.1
    return p


def mlp(p, x, act="relu"):
    f, _ = ACTS[act]
    h1 = f(x @ p["w1"] + p["b1"])
    h2 = f(h1 @ p["w2"] + p["b2"])
    return h2 @ p["w3"] + p["b3"]


def mse(p, x, y, act="relu"):
    return np.mean((mlp(p, x, act) - y) ** 2)


def mse_grad(p, x, y, act="relu"):
    f, df = ACTS[act]
    z1 = x @ p["w1"] + p["b1"]
    h1 = f(z1)
    z2 = h1 @ p["w2"] + p["b2"]
    h2 = f(z2)
    out = h2 @ p["w3"] + p["b3"]
    d_out = 2 * (out - y) / out.size
    g = {"w3": h2.T @ d_out, "b3": d_out.sum(0)}
    d_z2 = (d_out @ p["w3"].T) * df(z2, h2)
    g.update(w2=h1.T @ d_z2, b2=d_z2.sum(0))
    d_z1 = (d_z2 @ p["w2"].T) * df(z1, h1)
    g.update(w1=x.T @ d_z1, b1=d_z1.sum(0))
    return g


def sinusoid_task(rng, k=10, q=10):
    amp, phase = rng.uniform(0.1, 5), rng.uniform(0, np.pi)
    xs, xq = rng.uniform(-5, 5, (k, 1)), rng.uniform(-5, 5, (q, 1))
    return xs, amp * np.sin(xs - phase), xq, amp * np.sin(xq - phase)


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
