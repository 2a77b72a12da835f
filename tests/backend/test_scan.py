"""Scans (forward, reverse, nested, every way a carry can rotate) and calls,
lowered, against the reference interpreter."""
from __future__ import annotations

import numpy as np
import pytest

from metacc.ir.builder import Builder
from metacc.ir.types import TensorType
from tests.backend.check import assert_matches


def T(*shape, dt="f64"):
    return TensorType(dt, tuple(shape))


def body_fn():
    """consts w; carries c (array), s (scalar); xs x (row), z (scalar) -> carries, ys (c', s', c' * z)."""
    b = Builder()
    w, c, s = b.input("w", T(3)), b.input("c", T(3)), b.input("s", T())
    x, z = b.input("x", T(3)), b.input("z", T())
    c2 = b.tanh(b.add(b.mul(c, w), x), name="c")
    s2 = b.add(s, b.reduce_sum(c2, axes=(0,)), name="s")
    return b.build("step", [c2, s2, c2, s2, b.mul(c2, z, name="cz")])


def scan_fn(reverse: bool, length: int = 4):
    b = Builder()
    w, c0, s0 = b.input("w", T(3)), b.input("c0", T(3)), b.input("s0", T())
    xs, zs = b.input("xs", T(length, 3)), b.input("zs", T(length))
    outs = b.emit("scan", w, c0, s0, xs, zs, body=body_fn(), length=length, n_consts=1, n_carry=2,
                  reverse=reverse, names=["c_final", "s_final", "cs", "ss", "czs"])
    return b.build("scan_" + ("rev" if reverse else "fwd"), list(outs))


def rotations_fn():
    """Carries that swap (new value in its own buffer), stage (pass-through,
    permutation, one value feeding two carries) and matrix carries through a matmul."""
    bb = Builder()
    m, a, p, q, r, u = (bb.input(nm, T(*sh)) for nm, sh in
                        (("m", (3, 3)), ("a", (3, 3)), ("p", (3,)), ("q", (3,)), ("r", (3,)), ("u", (3,))))
    a2 = bb.matmul(a, m, name="a")                 # swap
    s = bb.add(p, q, name="pq")
    # p <- q, q <- p (permutation), r <- s, u <- s (one value, two carries)
    body = bb.build("rot", [a2, q, p, s, s, bb.reduce_sum(a2, axes=(0, 1))])
    b = Builder()
    m, a0 = b.input("m", T(3, 3)), b.input("a0", T(3, 3))
    p0, q0, r0, u0 = (b.input(nm, T(3)) for nm in ("p0", "q0", "r0", "u0"))
    outs = b.emit("scan", m, a0, p0, q0, r0, u0, body=body, length=5, n_consts=1, n_carry=5,
                  names=["a_f", "p_f", "q_f", "r_f", "u_f", "tr"])
    return b.build("rotations", list(outs))


def nested_fn():
    ib = Builder()
    k, h = ib.input("k", T(2)), ib.input("h", T(2))
    inner = ib.build("inner", [ib.add(ib.mul(h, 0.5), k, name="h"), ib.mul(h, h, name="hh")])
    ob = Builder()
    g, hx = ob.input("g", T(2)), ob.input("hx", T(2))
    hs = ob.emit("scan", g, hx, body=inner, length=3, n_consts=1, n_carry=1, names=["h_in", "hh_rows"])
    gn = ob.sin(ob.add(g, hs[0]), name="g")
    outer = ob.build("outer", [gn, ob.reduce_sum(hs[1], axes=(0, 1), name="total")])
    b = Builder()
    g0, h0 = b.input("g0", T(2)), b.input("h0", T(2))
    outs = b.emit("scan", h0, g0, body=outer, length=4, n_consts=1, n_carry=1, names=["g_f", "totals"])
    return b.build("nested", list(outs))


def call_fn():
    cb = Builder()
    x, y = cb.input("x", T("n", 3)), cb.input("y", T(3))
    callee = cb.build("affine", [cb.relu(cb.add(cb.mul(x, y), 1.0))])
    sb = Builder()
    xr, c = sb.input("xr", T("n", 3)), sb.input("c", T(3))
    (hv,) = sb.emit("call", xr, c, fn=callee, names=["h"])
    step = sb.build("step", [sb.reduce_sum(hv, axes=(0,), name="c")])
    b = Builder()
    x, y = b.input("x", T("n", 3)), b.input("y", T(3))
    (h,) = b.emit("call", x, y, fn=callee, names=["h"], remat=True)
    (cf,) = b.emit("scan", x, y, body=step, length=2, n_consts=1, n_carry=1, names=["c_final"])
    return b.build("calls", [h, cf])


def keep_fn(with_work: bool):
    """Carries passed through unchanged (the reverse loop of a first-order update)."""
    bb = Builder()
    a, c, s = bb.input("a", T(3)), bb.input("c", T(3)), bb.input("s", T())
    outs = [c, bb.add(s, bb.reduce_sum(bb.mul(a, c), axes=(0,)))] if with_work else [c, s]
    body = bb.build("pass_through", outs)
    b = Builder()
    a0, c0, s0 = b.input("a0", T(3)), b.input("c0", T(3)), b.input("s0", T())
    outs = b.emit("scan", a0, c0, s0, body=body, length=3, n_consts=1, n_carry=2, reverse=True,
                  names=["c_f", "s_f"])
    return b.build("keep_" + ("work" if with_work else "idle"), [outs[0], outs[1], b.mul(outs[0], 2.0)])


def empty_fn():
    b = Builder()
    w, c0, s0 = b.input("w", T(3)), b.input("c0", T(3)), b.input("s0", T())
    xs, zs = b.input("xs", T(0, 3)), b.input("zs", T(0))
    outs = b.emit("scan", w, c0, s0, xs, zs, body=body_fn(), length=0, n_consts=1, n_carry=2,
                  names=["c_final", "s_final", "cs", "ss", "czs"])
    return b.build("empty_scan", list(outs))


def args_of(fn, rng, n=4):
    return [rng.normal(size=tuple(n if isinstance(d, str) else d for d in v.type.shape)) if v.type.rank
            else np.float64(rng.normal()) for v in fn.ins]


@pytest.mark.parametrize("make", [lambda: scan_fn(False), lambda: scan_fn(True), rotations_fn, nested_fn,
                                  call_fn, empty_fn, lambda: keep_fn(True), lambda: keep_fn(False)],
                         ids=["forward", "reverse", "rotations", "nested", "calls", "empty", "keep", "idle"])
def test_scan_matches_interpreter(build, make):
    fn = make()
    mod = build(fn)
    rng = np.random.default_rng(3)
    for _ in range(2):          # the second call reuses the workspace layout of the first
        assert_matches(fn, mod, args_of(fn, rng))


def test_reverse_scan_reads_row_k_at_iteration_k(build):
    """ys of the reverse scan are stored at the iteration's own index."""
    fwd, rev = scan_fn(False), scan_fn(True)
    rng = np.random.default_rng(5)
    args = args_of(fwd, rng)
    a = build(fwd).ENTRY_CALL(*args)
    r = build(rev).ENTRY_CALL(*args)
    # with xs all equal, the two directions see the same inputs in opposite order
    args[3][:] = args[3][0]
    args[4][:] = args[4][0]
    a = build(fwd).ENTRY_CALL(*args)
    r = build(rev).ENTRY_CALL(*args)
    np.testing.assert_allclose(a[2], r[2][::-1], rtol=1e-12)


def test_scan_loops_stay_rolled():
    from metacc.backend import lower_source
    short, long = lower_source(scan_fn(False, 3)), lower_source(scan_fn(False, 300))
    assert abs(len(short.splitlines()) - len(long.splitlines())) == 0
    assert "range(300)" in long


def test_idle_loop_is_not_run():
    from metacc.backend import lower_source
    src = lower_source(keep_fn(False))
    assert "skipped" in src and "range(3 - 1, -1, -1)" not in src
