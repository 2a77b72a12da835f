"""Hand-built IR programs for the backend and runtime tests (no front end needed).

`p1_program(K, dtype)` is WORKLOADS.md's P1 (sinusoid MAML, MLP 1-40-40-1,
K inner SGD steps), built with metacc.ir.builder in the shape the front end
produces: `grad` equations inside a scan, expanded by metacc.ad.
"""
from __future__ import annotations

from metacc.errors import Source
from metacc.ir.builder import Builder, inline
from metacc.ir.types import TensorType
from metacc.program import Arg, Field, Function, Init, ParamGroup, Program, TaskType

NET = (("w1", (1, 40), "he_normal"), ("b1", (40,), "zeros"), ("w2", (40, 40), "he_normal"),
       ("b2", (40,), "zeros"), ("w3", (40, 1), "he_normal"), ("b3", (1,), "zeros"))


def t(dtype, *shape):
    return TensorType(dtype, tuple(shape))


def mlp(b: Builder, p, x):
    w1, b1, w2, b2, w3, b3 = p
    h = b.relu(b.add(b.matmul(x, w1), b1), name="h1")
    h = b.relu(b.add(b.matmul(h, w2), b2), name="h2")
    return b.add(b.matmul(h, w3), b3, name="pred")


def mse_fn(dtype, n="n"):
    b = Builder()
    p = [b.input(f"p.{name}", t(dtype, *shape)) for name, shape, _ in NET]
    x, y = b.input("x", t(dtype, n, 1)), b.input("y", t(dtype, n, 1))
    d = b.sub(mlp(b, p, x), y, name="err")
    total = b.reduce_sum(b.mul(d, d), axes=(0, 1), name="sq")
    return b.build("mse", [b.div(total, b.dim_size(dims=(n, 1), dtype=dtype), name="loss")])


def step_fn(dtype, first_order=False):
    b = Builder()
    x, y = b.input("x", t(dtype, "k", 1)), b.input("y", t(dtype, "k", 1))
    alpha = b.input("alpha", t(dtype))
    p = [b.input(f"p.{name}", t(dtype, *shape)) for name, shape, _ in NET]
    gs = b.emit("grad", *p, x, y, fn=mse_fn(dtype, "k"), n_wrt=6, names=[f"g_{n}" for n, _, _ in NET])
    if first_order:
        gs = [b.stop_gradient(g) for g in gs]
    new = [b.sub(pi, b.mul(alpha, g), name=f"p.{n}") for pi, g, (n, _, _) in zip(p, gs, NET)]
    return b.build("sgd_step", new)


def maml_fn(dtype, K, first_order=False):
    b = Builder()
    theta = [b.input(f"theta.{name}", t(dtype, *shape)) for name, shape, _ in NET]
    sx, sy = b.input("t.support.x", t(dtype, "k", 1)), b.input("t.support.y", t(dtype, "k", 1))
    qx, qy = b.input("t.query.x", t(dtype, "q", 1)), b.input("t.query.y", t(dtype, "q", 1))
    alpha = b.input("alpha", t(dtype))
    p = b.emit("scan", sx, sy, alpha, *theta, body=step_fn(dtype, first_order), length=K, n_consts=3,
               n_carry=6, names=[f"p.{n}" for n, _, _ in NET])
    (loss,) = inline(b, mse_fn(dtype, "q"), list(p) + [qx, qy])
    return b.build("maml", [loss])


def p1_program(K=5, dtype="f64", first_order=False) -> Program:
    fields = tuple(Field(n, t(dtype, *s), Init(i)) for n, s, i in NET)
    net = ParamGroup("Net", fields)
    task = TaskType("Sinusoid", tuple(Field(f"{s}.{v}", t(dtype, d, 1)) for s, d in (("support", "k"),
                                                                                   ("query", "q"))
                                      for v in ("x", "y")))
    x_arg = Arg("x", "tensor", f"{dtype}[n, 1]", (Field("", t(dtype, "n", 1)),))
    y_arg = Arg("y", "tensor", f"{dtype}[n, 1]", (Field("", t(dtype, "n", 1)),))
    scalar = Arg("", "tensor", dtype, (Field("", t(dtype)),))
    mse = Function("mse", "fn", (Arg("p", "params", "Net", fields), x_arg, y_arg), scalar, mse_fn(dtype))
    maml = Function("maml", "meta", (Arg("theta", "params", "Net", fields),
                                     Arg("t", "task", "Sinusoid", task.fields),
                                     Arg("alpha", "tensor", dtype, (Field("", t(dtype)),), default=0.01)),
                    scalar, maml_fn(dtype, K, first_order))
    prog = Program(Source(f"<p1 K={K} {dtype}{' first-order' if first_order else ''}>", ""))
    prog.groups["Net"] = net
    prog.tasks["Sinusoid"] = task
    prog.functions = {"mse": mse, "maml": maml}
    return prog
