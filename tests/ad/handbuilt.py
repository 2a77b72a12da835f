"""Small hand-built IR programs for the AD tests that need no front end:
a tanh regression loss, a MAML-style loop of inner gradient steps, and an
argmin with a closed-form answer."""
from __future__ import annotations

from metacc.ir.builder import Builder, inline
from metacc.ir.types import TensorType


def f64(*shape):
    return TensorType("f64", tuple(shape))


def loss_fn(k="k"):
    b = Builder()
    p, x, y = b.input("p", f64(3, 1)), b.input("x", f64(k, 3)), b.input("y", f64(k, 1))
    r = b.sub(b.tanh(b.matmul(x, p)), y)
    return b.build("loss", [b.reduce_sum(b.mul(r, r), axes=(0, 1), name="loss")])


def step_fn(first_order=False):
    b = Builder()
    x, y, a, p = b.input("x", f64("k", 3)), b.input("y", f64("k", 1)), b.input("alpha", f64()), b.input("p", f64(3, 1))
    (g,) = b.emit("grad", p, x, y, fn=loss_fn(), n_wrt=1)
    if first_order:
        g = b.stop_gradient(g)
    return b.build("step", [b.sub(p, b.mul(a, g), name="p")])


def maml(K, checkpoint=None, first_order=False, truncate=None):
    """theta, x, y, xq, yq, alpha -> query loss after K inner steps."""
    b = Builder()
    th, x, y = b.input("theta", f64(3, 1)), b.input("x", f64("k", 3)), b.input("y", f64("k", 1))
    xq, yq, a = b.input("xq", f64("q", 3)), b.input("yq", f64("q", 1)), b.input("alpha", f64())
    p = th
    pieces = [(K, first_order)] if truncate is None else [(K - truncate, True), (truncate, False)]
    for length, fo in pieces:
        prm = dict(body=step_fn(fo), length=length, n_consts=3, n_carry=1, label="inner")
        if checkpoint:
            prm["checkpoint"] = checkpoint
        (p,) = b.emit("scan", x, y, a, p, **prm)
    (loss,) = inline(b, loss_fn("q"), [p, xq, yq])
    return b.build("maml", [loss])


def quadratic_argmin(implicit, lam=1.0):
    """theta, A, y, q -> <q, argmin_p 1/2|A p - y|^2 + lam/2 |p - theta|^2>."""
    fb = Builder()
    p, th, A, y = fb.input("p", f64(3, 1)), fb.input("theta", f64(3, 1)), fb.input("A", f64(5, 3)), fb.input("y", f64(5, 1))
    r, d = fb.sub(fb.matmul(A, p), y), fb.sub(p, th)
    obj = fb.build("F", [fb.add(fb.mul(fb.reduce_sum(fb.mul(r, r), axes=(0, 1)), 0.5),
                                fb.mul(fb.reduce_sum(fb.mul(d, d), axes=(0, 1)), lam / 2))])
    b = Builder()
    th, A, y, q = b.input("theta", f64(3, 1)), b.input("A", f64(5, 3)), b.input("y", f64(5, 1)), b.input("q", f64(3, 1))
    (ps,) = b.emit("argmin", th, th, A, y, objective=obj, n_p=1,
                   solver={"kind": "sgd", "lr": 0.05, "steps": 400}, implicit=implicit)
    return b.build("outer", [b.reduce_sum(b.mul(ps, q), axes=(0, 1))])
