"""Dead-code elimination: drop equations whose outputs nothing uses.

Inside loops it also drops stacked outputs (ys) nobody reads and constants
the body no longer uses, so residual buffers are only what the backward
sweep needs. Equations without outputs in use are pure, so removal is safe; the
exception is a `diagnostic` (no outputs: it reports a solver's convergence).
"""
from __future__ import annotations

from metacc.ir.core import Eqn, Func, Var
from metacc.ir.scan import ScanLayout, rebuilt
from metacc.ir.walk import with_body, with_parts

# equations kept for what they report, not for a value (they have no outputs)
EFFECTS = ("diagnostic",)


def dce(fn: Func, _memo: dict | None = None) -> Func:
    # _memo: results for scans and calls already pruned during this top-level call. A scan's
    # pruning runs dce on its body several times (a fixpoint over its carries), so without it
    # loops nested L deep (multi-level checkpointing, nested repeats) cost exponential in L.
    memo = {} if _memo is None else _memo
    live: set[Var] = {a for a in fn.outs if isinstance(a, Var)}
    kept: list[Eqn] = []
    for e in reversed(fn.eqns):
        used = [v in live for v in e.outs]
        if not any(used) and e.prim not in EFFECTS:
            continue
        if e.prim == "scan":
            e = _prune_scan(e, used, memo)
        elif e.prim == "call":
            sub = _memoized(memo, ("call", id(e.params["fn"])), e.params["fn"], lambda: dce(e.params["fn"], memo))
            e = with_parts(e, params={**e.params, "fn": sub})
        kept.append(e)
        live.update(a for a in e.ins if isinstance(a, Var))
    return with_body(fn, eqns=reversed(kept))


def _memoized(memo: dict, key, owner, compute):
    hit = memo.get(key)
    if hit is not None and hit[0] is owner:       # owner kept alive in the memo: its id is not reused
        return hit[1]
    out = compute()
    memo[key] = (owner, out)
    return out


def _prune_scan(e: Eqn, used: list[bool], memo: dict) -> Eqn:
    return _memoized(memo, ("scan", id(e), tuple(used)), e, lambda: _prune_scan_uncached(e, used, memo))


def _prune_scan_uncached(e: Eqn, used: list[bool], memo: dict) -> Eqn:
    prm = e.params
    body: Func = prm["body"]
    layout = ScanLayout.of(e)
    carry_in = layout.carry(body.ins)
    keep_carry, keep_ys = map(list, layout.split_outs(used))
    # a carry stays if it is used outside, or some kept output of the body reads it (fixpoint)
    while True:
        outs_kept = [o for o, k in zip(body.outs, keep_carry + keep_ys) if k]
        probe = dce(Func(body.name, body.ins, body.eqns, tuple(outs_kept), body.span), memo)
        reads = _reads(probe)
        new = [k or c in reads for c, k in zip(carry_in, keep_carry)]
        if new == keep_carry:
            break
        keep_carry = new
    # the last probe kept exactly these outputs; pruning the body again would double the work at
    # every level of nested loops (2^depth)
    new_body = probe
    reads = _reads(new_body)
    keep_const = [v in reads for v in layout.consts(body.ins)]
    keep_x = [v in reads for v in layout.xs(body.ins)]
    in_keep = keep_const + keep_carry + keep_x
    if all(in_keep) and all(keep_ys):
        return with_parts(e, params={**prm, "body": new_body})
    body_ins = tuple(v for v, k in zip(body.ins, in_keep) if k)
    new_body = Func(new_body.name, body_ins, new_body.eqns, new_body.outs, new_body.span)
    ins = tuple(a for a, k in zip(e.ins, in_keep) if k)
    outs = tuple(v for v, k in zip(e.outs, keep_carry + keep_ys) if k)
    return rebuilt(e, ins, outs, new_body, n_consts=sum(keep_const), n_carry=sum(keep_carry))


def _reads(fn: Func) -> set[Var]:
    out = {a for e in fn.eqns for a in e.ins if isinstance(a, Var)}
    out.update(a for a in fn.outs if isinstance(a, Var))
    return out
