"""The kernel pipeline: for each kernel kind, the list of named passes from a
function's IR to its Numba module, run by one driver (metacc.passes.driver)
with the IR verifier after every pass that rewrites the IR.

    transform    the kernel's program: the function (grad/argmin expanded),
                 its gradient, VJP, JVP or HVP (metacc.ad)
    poison       derivative kinds only: derivatives non-finite where the value is
    simplify     fold, passthrough, licm, cse, dce, to a fixpoint
    lower_cg     conjugate-gradient solves as loops
    simplify2    the same passes again (fold2 ... dce2): the `simplified` IR
    expand       what is left to expand, where anything is (normally nothing)
    hoist        solver diagnostics and label checks become extra outputs
    inline, fusion, plan, lower    the back end (metacc.backend.generate)

The kernel kinds are metacc.kinds.KINDS.

`kernel_ir(fn, kind, wrt, stage)` is the IR after any IR stage (memoised),
`kernel_source(fn, kind, wrt, batched)` the generated module, and
`show_stage(...)` the text `metacc show --stage` prints after any pass.
"""
from __future__ import annotations

import textwrap
from dataclasses import replace

from metacc.ad import expand, grad_func, hvp_func, jvp_func, vjp_func
from metacc.ad.activity import collecting, report
from metacc.ad.expand import needs_expand
from metacc.ad.poison import poison
from metacc.ad.vjp import check_connected_inputs
from metacc.backend.generate import BACKEND
from metacc.backend.wrap import literal, wrap_line
from metacc.convergence import hoist
from metacc.errors import MetaccError, did_you_mean
from metacc.ir.core import Func
from metacc.ir.printer import format_func
from metacc.kinds import KINDS
from metacc.passes import simplification
from metacc.passes.driver import Build, Pass, find, ir_pass, run, stage_names
from metacc.passes.lower_cg import lower_cg

DERIVATIVES = KINDS[1:]


# ---- the transforms ----

def _connected(fn: Func, wrt) -> Func:
    """vjp and jvp follow grad's rule for differentiated inputs no output depends
    on (metacc.ad.vjp.check_connected_inputs): a warning and zeros for some, an
    error when none reaches an output (auxiliary outputs do not count: they are
    never differentiated)."""
    full = expand(fn.without_aux())
    check_connected_inputs(full, [i for i, v in enumerate(full.ins) if v.type.is_float] if wrt is None
                           else wrt, what=f"the {'first result' if fn.n_aux else 'outputs'} of {fn.name}",
                           noun="derivative", callable_name=fn.name)
    return fn


def _vjp(fn: Func, wrt) -> Func:
    # cotangents come in for the differentiated outputs only; every output comes back
    n = len(fn.outs) - fn.n_aux
    return vjp_func(_connected(fn, wrt), wrt, out_mask=[k < n for k in range(len(fn.outs))])


# Auxiliary outputs (Func.n_aux: a tuple result's results after the first) are computed beside
# the value and never differentiated: grad and vjp return them after the value, jvp without
# tangents, hvp not at all (it differentiates the first output only).
_TRANSFORMS = {
    "forward": lambda fn, wrt: expand(fn),
    "grad": lambda fn, wrt: grad_func(fn, wrt),
    "meta_grad": lambda fn, wrt: grad_func(fn, wrt),
    "vjp": _vjp,
    "jvp": lambda fn, wrt: jvp_func(_connected(fn, wrt), wrt),
    "hvp": lambda fn, wrt: hvp_func(fn.without_aux(), wrt, with_value=True),
}


def _need_scalar(fn: Func, kind: str) -> None:
    """grad, meta_grad and hvp differentiate one float scalar; anything else is the user's choice
    of kernel, not a bug of the transform."""
    outs = fn.without_aux().out_types
    if len(outs) == 1 and outs[0].rank == 0 and outs[0].is_float:
        return
    found = ", ".join(map(str, outs)) or "nothing"
    raise MetaccError(f"the {kind} kernel needs a function that returns a float scalar; {fn.name} returns {found}",
                      fn.span, expected="f32 or f64", found=found,
                      hint="reduce the result to a loss (sum(...), mean(...)), or use the vjp kernel "
                           "(cotangents of the outputs) or the jvp kernel (tangents of the outputs)")


def _transform(b: Build) -> Build:
    if b.kind in ("grad", "meta_grad", "hvp"):
        _need_scalar(b.fn, b.kind)
    wrt = list(b.wrt) if b.wrt is not None else None
    n_aux = b.fn.n_aux if b.kind != "hvp" else 0
    return Build(_TRANSFORMS[b.kind](b.fn, wrt), b.kind, b.wrt, b.batched, n_primal=len(b.fn.outs), n_aux=n_aux)


def _poison(b: Build) -> Build:
    # derivatives are made non-finite wherever the value is (metacc.ad.poison)
    return b.with_fn(poison(b.fn, b.kind, b.n_primal if b.kind in ("vjp", "jvp") else None, b.n_aux))


def _hoist(b: Build) -> Build:
    """Solver convergence figures become the kernel's last outputs (kept per task
    when batched), listed in the module as DIAGNOSTICS for the runtime to strip."""
    fn, descs = hoist(b.fn)
    n_user = len(fn.outs) - len(descs)
    batched, reduce = b.batched, None
    if batched is not None:     # inputs past the function's arguments (none today) are per call
        batched = tuple(batched) + (False,) * (len(fn.ins) - len(batched))
        reduce = ("mean",) * n_user + ("stack",) * len(descs)
    return replace(b, fn=fn, batched=batched, descs=tuple(descs), reduce=reduce)


_WHAT = {"forward": "the function itself, grad/argmin expanded (metacc.ad.expand)",
         "grad": "value and gradient (metacc.ad.grad_func)",
         "meta_grad": "meta-loss and meta-gradient (metacc.ad.grad_func)",
         "vjp": "outputs and input cotangents, given output cotangents (metacc.ad.vjp_func)",
         "jvp": "outputs and output tangents, given input tangents (metacc.ad.jvp_func)",
         "hvp": "gradient and Hessian-vector product, forward-over-reverse (metacc.ad.hvp_func)"}
TRANSFORMS = {kind: Pass("transform", _transform, what) for kind, what in _WHAT.items()}
POISON = Pass("poison", _poison, "derivatives made non-finite wherever the value is (metacc.ad.poison)")
MIDDLE = (
    simplification("", "the simplification passes above, repeated until a round changes nothing (at most 3)"),
    ir_pass("lower_cg", lower_cg, "conjugate-gradient solves as loops of CG steps (metacc.passes.lower_cg)"),
    simplification("2", "the simplification passes again, after lower_cg: the `simplified` IR"),
)
BACK = (
    ir_pass("expand", lambda fn: expand(fn) if needs_expand(fn) else fn,
            "grad/argmin/call left in the kernel expanded, where there are any (metacc.ad.expand)"),
    Pass("hoist", _hoist, "solver diagnostics and label-range checks as extra outputs (metacc.convergence)"),
) + BACKEND

PIPELINES: dict[str, tuple] = {kind: (TRANSFORMS[kind],) + ((POISON,) if kind in DERIVATIVES else ()) + MIDDLE + BACK
                               for kind in KINDS}
# the IR stages kernel_ir memoises (the back end's depend on the batch layout)
IR_END = "simplify2"



def aliases(kind: str) -> dict[str, str]:
    """The stage names `metacc show` had before the pipeline was data: `ir` is the
    transform's last pass, `simplified` what the back end lowers, `numba` its module."""
    return {"ir": "poison" if kind in DERIVATIVES else "transform", "simplified": IR_END, "numba": "lower"}


def passes(kind: str) -> tuple:
    _check_kind(kind)
    return PIPELINES[kind]


def stages(kind: str) -> list[str]:
    return stage_names(passes(kind))


def resolve(kind: str, name: str) -> str:
    """The pass name a stage name or alias stands for in kind's pipeline."""
    names = stage_names(passes(kind))
    name = aliases(kind).get(name, name)
    if name not in names:
        every = list(aliases(kind)) + names
        if find(PIPELINES["grad"], name) is not None:
            raise MetaccError(f"the {kind} kernel has no stage '{name}'", expected=", ".join(every), found=name,
                              hint="poison runs only in derivative kernels (--kernel grad, vjp, ...)")
        raise MetaccError(f"unknown stage '{name}'", expected=", ".join(every), found=name,
                          hint=did_you_mean(name, every) or "`metacc show --stages` lists them")
    return name


def _check_kind(kind: str) -> None:
    if kind not in PIPELINES:
        raise MetaccError(f"unknown kernel kind '{kind}'", hint=f"choose one of {', '.join(KINDS)}")


def is_ir_stage(kind: str, name: str) -> bool:
    names = stages(kind)
    return names.index(resolve(kind, name)) <= names.index(IR_END)


# ---- running it ----

_cache: dict = {}


def kernel_ir(fn: Func, kind: str, wrt=None, stage: str = "simplified") -> Func:
    """The kernel IR of `kind` after an IR stage (any pass up to simplify2, or the
    aliases 'ir' and 'simplified'), memoised with the warnings building it gave."""
    _check_kind(kind)
    name = resolve(kind, stage)
    if not is_ir_stage(kind, name):
        raise MetaccError(f"stage '{stage}' is past the kernel IR", expected=f"a stage up to {IR_END}",
                          hint="the back end's stages need a batch layout: use kernel_source or show_stage")
    key = (id(fn), kind, tuple(wrt) if wrt is not None else None, name)
    hit = _cache.get(key)
    if hit is not None and hit[0] is fn:
        return hit[1]
    with collecting() as notes:       # DisconnectedWarnings, kept with the kernel
        out = run(PIPELINES[kind], Build(fn, kind, key[2]), until=name).fn
    _cache[key] = (fn, out, tuple(dict.fromkeys(notes)))
    report(_cache[key][2])
    return out


def kernel_notes(fn: Func, kind: str, wrt=None) -> tuple:
    """The DisconnectedWarnings (message, field, where) building this kernel gave:
    the runtime writes them into the kernel's module, to repeat them when the
    kernel comes from the disk cache."""
    kernel_ir(fn, kind, wrt)
    return _cache[(id(fn), kind, tuple(wrt) if wrt is not None else None, IR_END)][2]


def back_end(fn: Func, kind: str, wrt=None, batched=None, until: str = "lower") -> Build:
    """The passes after the simplified IR, up to `until`, on kind's simplified kernel IR.
    `batched`: a flag per argument leaf of a meta function (its task arguments),
    None for a plain call."""
    simplified = kernel_ir(fn, kind, wrt)
    start = Build(simplified, kind, tuple(wrt) if wrt is not None else None,
                  tuple(batched) if batched is not None else None)
    return run(PIPELINES[kind], start, until=resolve(kind, until), after=IR_END)


def kernel_source(fn: Func, kind: str, wrt=None, batched=None) -> str:
    """The Numba module the runtime compiles (also what `metacc show --stage numba` prints)."""
    b = back_end(fn, kind, wrt, batched)
    src = b.source
    notes = kernel_notes(fn, kind, wrt)
    if notes:
        # the runtime repeats these whenever the kernel is loaded from the disk cache
        src += ("\n# disconnected differentiated inputs (metacc.DisconnectedWarning)\n"
                + "\n".join(wrap_line(f"WARNINGS = {literal(list(notes))}")) + "\n")
    if b.descs:
        return src + ("\n# solver convergence and label-range figures: the last len(DIAGNOSTICS) outputs "
                      "(metacc.convergence)\n"
                      + "\n".join(wrap_line(f"DIAGNOSTICS = {literal(list(b.descs))}")) + "\n")
    return src


def show_stage(fn: Func, kind: str, wrt=None, batched=None, stage: str = "simplified") -> str:
    """What `metacc show --stage NAME` prints for one kernel."""
    name = resolve(kind, stage)
    if name == "lower":
        return kernel_source(fn, kind, wrt, batched)
    if is_ir_stage(kind, name):
        return format_func(kernel_ir(fn, kind, wrt, name))
    b = back_end(fn, kind, wrt, batched, name)
    step = find(PIPELINES[kind], name)
    return step.show(b) if getattr(step, "show", None) else format_func(b.fn)


def describe() -> str:
    """`metacc show --stages`: the pass list of each kernel kind, with what each pass does."""
    width = max(len(n) for kind in KINDS for n in stage_names(PIPELINES[kind])) + 2
    shared = [n for n in stage_names(PIPELINES["grad"]) if n != "transform"]
    out = ["transform (one per kind):"]
    out += [f"  {kind:<{width}}{TRANSFORMS[kind].doc}" for kind in KINDS]
    for title, kinds in (("forward", ["forward"]), (", ".join(DERIVATIVES), DERIVATIVES)):
        names = stage_names(PIPELINES[kinds[0]])
        alias = {v: k for k, v in aliases(kinds[0]).items()}
        out.append("\n" + textwrap.fill(f"{title}: {' -> '.join(names)}", 100, subsequent_indent="    ",
                                         break_on_hyphens=False))
        if kinds[0] == "forward":
            out.append("  (the passes listed below, without poison; alias: ir = transform)")
            continue
        for n in shared:
            note = f"  [alias: {alias[n]}]" if n in alias else ""
            out.append(f"  {n:<{width}}{find(PIPELINES[kinds[0]], n).doc}{note}")
    out.append("\n`metacc show FILE --kernel KIND --stage NAME` prints the program after any of them;\n"
               "inside simplify and simplify2, after a pass's first round. Without --kernel: the forward\n"
               "kernel's, except that `ir` is the function's own IR (before any transform); `ast` is its syntax tree.")
    return "\n".join(out)
