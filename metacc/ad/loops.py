"""Derivatives of structured control flow: scan (loops) and call.

Forward mode runs one loop over (primal, tangent) carries.

Reverse mode does not unroll. The body's combined VJP is split by partial
evaluation into fwd (body + residuals) and bwd (residuals + cotangents ->
cotangents). The forward loop runs fwd and stacks the residuals into
[K, ...] buffers (the loop's ys); the backward loop runs in reverse over
those buffers, carrying the cotangents of the loop state and accumulating
those of loop constants. Both loops are ordinary scans, so the result can be
differentiated again, and the program size does not depend on K.

Checkpointing rewrites a scan into an outer scan over segments whose body is
a `call(remat=True)` of an inner scan: the outer loop stores one state per
segment, and the backward sweep recomputes each segment's states from it.
Values are untouched; only memory and recomputation change.

The rules here have the signature of every other (metacc.ad.rules) and are
registered in the same tables; what a loop's forward half hands its backward
half is a `ScanResiduals` record (or `CheckpointResiduals`, one per piece).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from metacc.ad.activity import active_outputs, scan_carry_activity
from metacc.ad.jvp import jvp_inline
from metacc.ad.partial_eval import Split, partial_eval
from metacc.ad.rules import JVP_RULES, VJP_RULES, VjpRule, emit_primal, primal_forward
from metacc.ad.transforms import vjp_func
from metacc.ad.util import materialize, zeros
from metacc.errors import InternalError
from metacc.ir.builder import Builder, inline
from metacc.ir.core import Eqn, Func, Var
from metacc.ir.scan import ScanLayout
from metacc.ir.walk import all_eqns
from metacc.passes import simplify


@dataclass(frozen=True)
class ScanResiduals:
    """What a scan's reverse loop needs from its forward loop.

    Positions are those of the body's inputs (= the scan's operands) and outputs."""
    split: Split                  # the body's VJP split into fwd (saves residuals) and bwd
    act: list[bool]               # which body inputs carry a derivative (at the carries' fixpoint)
    wrt: list[int]                # the float ones among them: differentiated
    out_mask: list[bool]          # body outputs whose cotangents flow back
    res_consts: list[int]         # residuals that are loop constants: read as they are
    res_xs: list[int]             # residuals that are per-iteration inputs: read row by row
    res_carry: list[int]          # residuals that are carries: stacked by the forward loop
    stacks: list[Var]             # the forward loop's stacked residuals: computed ones, then carries


@dataclass(frozen=True)
class CheckpointPiece:
    eqn: Eqn                      # the outer loop over segments, or the remainder loop
    ins: list                     # its operands
    primal: list                  # its results
    act: list[bool]
    residuals: ScanResiduals


@dataclass(frozen=True)
class CheckpointResiduals:
    pieces: list[CheckpointPiece]

# ---------------------------------------------------------------- forward mode


def _jvp_scan(b: Builder, e: Eqn, ins, in_tans):
    prm = e.params
    body: Func = prm["body"]
    layout = ScanLayout.of(e)
    nc, nk = layout.n_consts, layout.n_carry
    act = scan_carry_activity(e, [t is not None for t in in_tans])
    out_act = active_outputs(body, act)
    bb = Builder(span=body.span)
    args, tans = [], []
    groups = [(0, nc), (nc, nc + nk), (nc + nk, len(body.ins))]     # consts, carry, xs
    order = []   # body-input layout of the new scan: each group's primals then its tangents
    for lo, hi in groups:
        prim_vars = [bb.input(v.name, v.type) for v in body.ins[lo:hi]]
        tan_vars = [bb.input(v.name + "_dot", v.type) if act[lo + i] and v.type.is_float else None
                    for i, v in enumerate(body.ins[lo:hi])]
        args += prim_vars
        tans += tan_vars
        order.append((lo, hi))
    outs, out_tans = jvp_inline(bb, body, args, tans)
    carry_t = [materialize(bb, out_tans[j], body.outs[j].type, name=_name(body.outs[j]) + "_dot")
               for j in range(nk) if act[nc + j] and body.ins[nc + j].type.is_float]
    ys_idx = [j for j in range(nk, len(body.outs)) if out_act[j] and body.outs[j].type.is_float]
    ys_t = [materialize(bb, out_tans[j], body.outs[j].type) for j in ys_idx]
    new_body = bb.build(body.name + "_jvp", list(outs[:nk]) + carry_t + list(outs[nk:]) + ys_t)
    # the builder's inputs are in order consts, consts_dot, carry, carry_dot, xs, xs_dot
    scan_ins, n_groups = [], []
    for lo, hi in order:
        prim_in = ins[lo:hi]
        tan_in = [materialize(b, in_tans[lo + i], v.type) for i, v in enumerate(body.ins[lo:hi])
                  if act[lo + i] and v.type.is_float]
        scan_ins += list(prim_in) + tan_in
        n_groups.append(len(prim_in) + len(tan_in))
    n_ct, n_kt = len(carry_t), len(ys_t)
    # the tangent outputs are named after the outputs they differentiate (h -> h_dot) when emitted
    names = [_name(v) for v in new_body.outs]
    carry_dot = [j for j in range(nk) if act[nc + j] and body.ins[nc + j].type.is_float]
    for k, j in enumerate(carry_dot):
        names[nk + k] = e.outs[j].name + "_dot"
    for k, j in enumerate(ys_idx):
        names[len(names) - n_kt + k] = e.outs[j].name + "_dot"
    outs_all = b.emit("scan", *scan_ins, names=names, span=e.span,
                      **{**prm, "body": new_body, "n_consts": n_groups[0], "n_carry": n_groups[1]})
    carry_out, carry_tan = outs_all[:nk], outs_all[nk:nk + n_ct]
    ys_out, ys_tan = outs_all[nk + n_ct:len(outs_all) - n_kt], outs_all[len(outs_all) - n_kt:]
    tangents = [None] * len(e.outs)
    k = 0
    for j in range(nk):
        if act[nc + j] and body.ins[nc + j].type.is_float:
            tangents[j] = carry_tan[k]
            k += 1
    for y, j in zip(ys_tan, ys_idx):
        tangents[j] = y
    return list(carry_out) + list(ys_out), tangents


def _jvp_call(b: Builder, e: Eqn, ins, in_tans):
    """One call of fn's JVP: its outputs, then the tangents of its float outputs."""
    fn: Func = e.params["fn"]
    bb = Builder(span=fn.span)
    args = [bb.input(v.name, v.type) for v in fn.ins]
    idx = [i for i, t in enumerate(in_tans) if t is not None]
    tan_vars = {i: bb.input(fn.ins[i].name + "_dot", fn.ins[i].type) for i in idx}
    outs, out_tans = jvp_inline(bb, fn, args, [tan_vars.get(i) for i in range(len(args))])
    float_outs = [j for j, a in enumerate(fn.outs) if a.type.is_float]
    sub = bb.build(fn.name + "_jvp", list(outs) + [materialize(bb, out_tans[j], fn.outs[j].type)
                                                   for j in float_outs])
    res = b.emit("call", *ins, *[in_tans[i] for i in idx], names=[_name(v) for v in sub.outs],
                 span=e.span, **{**e.params, "fn": sub})
    n = len(fn.outs)
    tangents = [None] * n
    for j, t in zip(float_outs, res[n:]):
        tangents[j] = t
    return list(res[:n]), tangents


def _check_consts_inactive(e: Eqn, tans):
    if any(t is not None for t in tans[e.params["n_b"]:]):
        raise InternalError("cg_solve: the operator's constants must not carry derivatives "
                            "(implicit differentiation freezes them)")


def _jvp_cg(b: Builder, e: Eqn, ins, in_tans):
    _check_consts_inactive(e, in_tans)
    n = e.params["n_b"]
    outs = emit_primal(b, e, ins)
    rhs_dot = [materialize(b, t, x.type) for t, x in zip(in_tans[:n], ins[:n])]
    # the tangent solve decides the derivative: it reports its convergence (metacc.convergence)
    tans = b.emit("cg_solve", *rhs_dot, *ins[n:], names=[v.name + "_dot" for v in e.outs], span=e.span,
                  **{**e.params, "diagnose": True})
    return list(outs), list(tans)




# ---------------------------------------------------------------- reverse mode

def _vjp_scan_forward(b: Builder, e: Eqn, ins, act_in):
    """Emit the forward loop, saving residuals; return its outputs and what the backward loop needs."""
    if e.params.get("checkpoint"):
        return _checkpointed_forward(b, e, ins, act_in)
    prm = e.params
    body: Func = prm["body"]
    layout = ScanLayout.of(e)
    nc, nk = layout.n_consts, layout.n_carry
    act = scan_carry_activity(e, act_in)
    out_act = active_outputs(body, act)
    wrt = [i for i, v in enumerate(body.ins) if act[i] and v.type.is_float]
    out_mask = [a and o.type.is_float for a, o in zip(out_act, body.outs)]
    # the body may use dims of the enclosing function (zeros([n]) in a loop): they stay bound
    body_vjp = simplify(vjp_func(body, wrt, out_mask=out_mask), outer_symbols=_free_symbols(body))
    split = partial_eval(body_vjp, len(body.ins), len(body.outs), invariant_ins=range(nc))
    # residuals that are loop-carried inputs change every iteration: stack them too
    res_consts = [i for i in split.input_residuals if layout.is_const(i)]
    res_xs = [i for i in split.input_residuals if layout.is_xs(i)]
    res_carry = [i for i in split.input_residuals if layout.is_carry(i)]
    fwd = split.fwd
    fwd = Func(fwd.name, fwd.ins, fwd.eqns,
               fwd.outs + tuple(fwd.ins[i] for i in res_carry), fwd.span)
    n_ys = len(body.outs) - nk
    n_res = split.n_computed + len(res_carry)
    outs = b.emit("scan", *ins, names=[_name(v) for v in body.outs]
                  + [_res_name(v) for v in fwd.outs[len(body.outs):]],
                  span=e.span, **{**prm, "body": fwd})
    primal = list(outs[:nk + n_ys])
    stacks = list(outs[nk + n_ys:])
    assert len(stacks) == n_res
    return primal, ScanResiduals(split, act, wrt, out_mask, res_consts, res_xs, res_carry, stacks)


def _free_symbols(fn: Func) -> frozenset[str]:
    """Symbolic dims fn uses without binding them by its inputs: those of its enclosing function."""
    used = {d for e in all_eqns(fn) for v in e.outs for d in v.type.symbols}
    return frozenset(used - set(fn.symbols()))


def _res_name(v: Var) -> str:
    return "res_" + _name(v)


def _name(a) -> str:
    """The name for a new var made after atom a: a body's output may be a literal (a carry set
    to a constant, `c = 5.0` in a loop), which has no name."""
    return getattr(a, "name", "c")


def _vjp_scan_backward(b: Builder, e: Eqn, ins, outs, gs, act_in, saved: ScanResiduals | CheckpointResiduals):
    if isinstance(saved, CheckpointResiduals):
        return _checkpointed_backward(b, e, ins, outs, gs, act_in, saved)
    prm = e.params
    body: Func = prm["body"]
    layout, length = ScanLayout.of(e), prm["length"]
    nk = layout.n_carry
    split, act, wrt, out_mask = saved.split, saved.act, saved.wrt, saved.out_mask
    bwd: Func = split.bwd
    n_ys = len(body.outs) - nk
    carry_bar_idx = [j for j in range(nk) if out_mask[j]]          # cotangents carried backwards
    const_bar_idx = [i for i in wrt if layout.is_const(i)]         # accumulated over iterations
    xs_bar_idx = [i for i in wrt if layout.is_xs(i)]               # one per iteration
    ys_bar_idx = [j for j in range(n_ys) if out_mask[nk + j] and gs[nk + j] is not None]

    # the reverse loop is the adjoint of the loop statement: its own accumulations cite it
    rb = Builder(span=body.span.as_adjoint() if body.span else None)
    r_consts = [rb.input(body.ins[i].name, body.ins[i].type) for i in saved.res_consts]
    r_carry_bar = [rb.input(_name(body.outs[j]) + "_bar", body.outs[j].type) for j in carry_bar_idx]
    r_acc = [rb.input(body.ins[i].name + "_bar", body.ins[i].type) for i in const_bar_idx]
    stack_vars = saved.stacks
    r_stack = [rb.input(v.name, v.type.with_shape(v.type.shape[1:])) for v in stack_vars]
    r_xs = [rb.input(body.ins[i].name, body.ins[i].type) for i in saved.res_xs]
    r_ys_bar = [rb.input(_name(body.outs[nk + j]) + "_bar", body.outs[nk + j].type) for j in ys_bar_idx]
    # residual inputs of bwd: input residuals (in split order), then computed ones
    by_index = dict(zip(saved.res_consts, r_consts)) | dict(zip(saved.res_xs, r_xs))
    n_comp = split.n_computed
    comp_vals, carry_res_vals = r_stack[:n_comp], r_stack[n_comp:]
    by_index |= dict(zip(saved.res_carry, carry_res_vals))
    res_vals = [by_index[i] for i in split.input_residuals] + comp_vals
    ys_bar_of = dict(zip(ys_bar_idx, r_ys_bar))
    carry_bar_of = dict(zip(carry_bar_idx, r_carry_bar))
    out_bar_vals = []
    for j, o in enumerate(body.outs):
        if not out_mask[j]:
            continue
        if j < nk:
            out_bar_vals.append(carry_bar_of[j])
        else:
            out_bar_vals.append(ys_bar_of.get(j - nk) or zeros(rb, o.type))
    in_bars = inline(rb, bwd, res_vals + out_bar_vals)
    bar_of = dict(zip(wrt, in_bars))
    new_carry_bar = [bar_of[i] if i in bar_of else zeros(rb, body.ins[i].type)
                     for i in map(layout.carry_in, carry_bar_idx)]
    new_acc = [rb.add(acc, bar_of[i], name=body.ins[i].name + "_bar") for acc, i in zip(r_acc, const_bar_idx)]
    xs_bars = [bar_of[i] for i in xs_bar_idx]
    rbody = rb.build(body.name + "_rev", new_carry_bar + new_acc + xs_bars)

    consts_in = [ins[i] for i in saved.res_consts]
    carry_in = [materialize(b, gs[j], outs[j].type, name=outs[j].name + "_bar") for j in carry_bar_idx]
    acc_in = [zeros(b, ins[i].type, name=ins[i].name + "_bar") for i in const_bar_idx]
    xs_in = stack_vars + [ins[i] for i in saved.res_xs] + [gs[nk + j] for j in ys_bar_idx]
    res = b.emit("scan", *consts_in, *carry_in, *acc_in, *xs_in,
                 names=[_name(v) for v in rbody.outs], span=e.span,
                 body=rbody, length=length, n_consts=len(consts_in), n_carry=len(carry_in) + len(acc_in),
                 reverse=not prm.get("reverse", False), label=f"reverse of {prm.get('label', 'loop')}")
    in_bars_all = [None] * len(ins)
    k = 0
    for j in carry_bar_idx:
        if act_in[layout.carry_in(j)] or act[layout.carry_in(j)]:
            in_bars_all[layout.carry_in(j)] = res[k]
        k += 1
    for i in const_bar_idx:
        in_bars_all[i] = res[k]
        k += 1
    for i in xs_bar_idx:
        in_bars_all[i] = res[k]
        k += 1
    return in_bars_all


# -- calls: only remat calls reach AD (expand inlines the others)

def _vjp_call_backward(b: Builder, e: Eqn, ins, outs, gs, act_in, saved: None):
    fn: Func = e.params["fn"]
    wrt = [i for i, a in enumerate(act_in) if a and fn.ins[i].type.is_float]
    out_mask = [g is not None for g in gs]
    # recompute inside: the combined VJP runs fn's forward again, then its backward
    sub = vjp_func(fn, wrt, out_mask=out_mask)
    res = b.emit("call", *ins, *[g for g in gs if g is not None], names=[_name(v) for v in sub.outs],
                 span=e.span, fn=sub, remat=False)
    bars = [None] * len(ins)
    for i, r in zip(wrt, res[len(fn.outs):]):
        bars[i] = r
    return bars


# -- checkpointing

def segment(e: Eqn) -> tuple[Func, int, int]:
    """Split a checkpointed scan into segments: returns (segment function, n_segments, segment length)."""
    prm = e.params
    length, body = prm["length"], prm["body"]
    layout = ScanLayout.of(e)
    if layout.xs(body.ins) or layout.split_outs(body.outs)[1]:
        raise InternalError("checkpointed loops take no per-iteration inputs or outputs")
    policy = prm["checkpoint"]
    if "every" in policy:
        seg, inner_policy = int(policy["every"]), None
    else:
        s = max(1, int(policy["snapshots"]))
        seg = math.ceil(length / s)
        inner_policy = dict(policy) if seg > s else None
        if inner_policy and seg >= length:
            # no progress: the segment would be this loop again (snapshots=1, rejected by the checker)
            raise InternalError(f"@checkpoint(snapshots={s}) does not split a loop of {length} steps")
    seg = max(1, min(seg, length))
    sb = Builder(span=body.span)
    consts = [sb.input(v.name, v.type) for v in layout.consts(body.ins)]
    carry = [sb.input(v.name, v.type) for v in layout.carry(body.ins)]
    inner = {k: v for k, v in prm.items() if k != "checkpoint"}
    if inner_policy:
        inner["checkpoint"] = inner_policy
    inner.update(length=seg, label=f"segment of {prm.get('label', 'loop')}")
    res = sb.emit("scan", *consts, *carry, names=[_name(v) for v in body.outs], span=e.span, **inner)
    seg_fn = sb.build(body.name + "_segment", list(res))
    return seg_fn, length // seg, seg


def _checkpointed_forward(b: Builder, e: Eqn, ins, act_in):
    """Outer loop over segments (one stored state each) + a plain remainder loop."""
    prm = e.params
    layout = ScanLayout.of(e)
    nc, nk = layout.n_consts, layout.n_carry
    seg_fn, n_seg, seg = segment(e)
    ob = Builder(span=seg_fn.span)
    consts = [ob.input(v.name, v.type) for v in layout.consts(seg_fn.ins)]
    carry = [ob.input(v.name, v.type) for v in layout.carry(seg_fn.ins)]
    res = ob.emit("call", *consts, *carry, names=[_name(v) for v in seg_fn.outs], fn=seg_fn, remat=True)
    outer_body = ob.build(seg_fn.name + "s", list(res))
    base = {k: v for k, v in prm.items() if k != "checkpoint"}
    outer = Eqn("scan", tuple(ins), tuple(Var(v.name, v.type) for v in e.outs),
                {**base, "body": outer_body, "length": n_seg,
                 "label": f"checkpointed segments of {prm.get('label', 'loop')}"}, e.span)
    pieces = [outer]
    rem = prm["length"] - n_seg * seg
    if rem:
        rest = Eqn("scan", tuple(ins[:nc]) + outer.outs, tuple(Var(v.name, v.type) for v in e.outs),
                   {**base, "length": rem, "label": f"remainder of {prm.get('label', 'loop')}"}, e.span)
        pieces.append(rest)
    done = []
    current = list(ins)
    for piece in pieces:
        piece_ins = list(ins[:nc]) + current[nc:] if piece is not outer else list(ins)
        act = list(act_in[:nc]) + [True] * nk
        primal, saved = _vjp_scan_forward(b, piece, piece_ins, act)
        done.append(CheckpointPiece(piece, piece_ins, primal, act, saved))
        current = list(ins[:nc]) + primal
    return current[nc:], CheckpointResiduals(done)


def _checkpointed_backward(b: Builder, e: Eqn, ins, outs, gs, act_in, saved: CheckpointResiduals):
    nc = ScanLayout.of(e).n_consts
    bars = [None] * len(ins)
    gs_now = list(gs)
    for piece in reversed(saved.pieces):
        piece_bars = _vjp_scan_backward(b, piece.eqn, piece.ins, piece.primal, gs_now, piece.act, piece.residuals)
        for i in range(nc):
            if piece_bars[i] is not None:
                bars[i] = piece_bars[i] if bars[i] is None else b.add(bars[i], piece_bars[i])
        gs_now = piece_bars[nc:]
    for j, g in enumerate(gs_now):
        bars[nc + j] = g
    return bars


def _vjp_cg_backward(b: Builder, e: Eqn, ins, outs, gs, act_in, saved: None):
    _check_consts_inactive(e, [True if a else None for a in act_in])
    n = e.params["n_b"]
    # A is symmetric: the transpose of x = A^-1 b is b_bar = A^-1 x_bar
    gs = [materialize(b, g, o.type) for g, o in zip(gs, outs)]
    bars = b.emit("cg_solve", *gs, *ins[n:], names=[x.name + "_bar" for x in ins[:n]], span=e.span,
                  **{**e.params, "diagnose": True})      # reports its convergence (metacc.convergence)
    return list(bars) + [None] * (len(ins) - n)


# registered in the tables every primitive's rules are in (metacc.ad.rules; metacc/ad/__init__.py imports
# this module, so they are there whenever metacc.ad is)
JVP_RULES.update({"scan": _jvp_scan, "call": _jvp_call, "cg_solve": _jvp_cg})
VJP_RULES.update({"scan": VjpRule(_vjp_scan_forward, _vjp_scan_backward),
                  "call": VjpRule(primal_forward, _vjp_call_backward),
                  "cg_solve": VjpRule(primal_forward, _vjp_cg_backward)})
