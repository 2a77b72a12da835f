"""Automatic differentiation over the IR, closed under its own transforms.

    jvp_func(fn, wrt)   forward mode          ins + tangents -> outs + tangents
    vjp_func(fn, wrt)   reverse mode          ins + cotangents -> outs + input cotangents
    grad_func(fn, wrt)  value and gradient    ins -> value, *grads
    hvp_func(fn, wrt)   forward-over-reverse  ins + v -> *grads, *H v
    expand(fn)          grad/argmin/call equations inlined as plain IR
Every result is ordinary IR, so each can be transformed again.
"""
from metacc.ad.expand import expand  # noqa: F401
from metacc.ad.transforms import grad_func, jvp_func, vjp_func  # noqa: F401
from metacc.ad.hvp import hvp_func  # noqa: F401
# these register their rules into the tables above them (they import expand, jvp and vjp):
from metacc.ad import implicit, loops  # noqa: F401,E402
