"""Kernels call the heavy helpers by address, so that LLVM never sees their bodies.

A Numba function that calls another jitted function gets the callee's LLVM IR
linked into its own module, and the whole module is optimised again at O3: for
P1's meta-gradient kernel, the matmul helpers (several argument-type
specialisations of each) made 1.5 MB of the kernel's IR and most of its LLVM
time, recompiled in every kernel although the helpers' own cache was warm.

So each helper a kernel calls is also compiled once as a C-ABI `cfunc` (the
`*_at` wrappers at the end of helpers.py, cached on disk beside the helpers),
its address registered with LLVM under a fixed name (`metacc_mm_f32`), and
the kernel calls that name through the intrinsics below, which keep the
helpers' names and arguments (`mm_nn(a, ao, b, bo, out, oo, m, kk, n)`, every
buffer an (array, offset) pair). LLVM sees a declaration; the kernel's machine
code refers to the symbol by name, so Numba's on-disk cache of a kernel stays
valid across processes as long as the symbol is registered before the cached
kernel is loaded: a generated module calls `link(...)` with what it needs when
it is imported. The cfuncs take no lock and raise nothing, so kernels stay
`nogil`. `copy_n` needs no helper at all: it is a memmove.
"""
from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
from numba import cfunc, types
from numba.core import cgutils
from numba.core.compiler_lock import global_compiler_lock
from numba.extending import intrinsic

from metacc.backend import helpers

DTYPES = {"f32": types.float32, "f64": types.float64, "i64": types.int64, "bool": types.boolean}
SUFFIX = {t: s for s, t in DTYPES.items()}
_P = types.CPointer
_i64 = types.int64


def _mm_sig(t):
    # a, b, out, then A's strides (row, inner), B's strides (inner, column), m, kk, n
    return types.void(_P(t), _P(t), _P(t), _i64, _i64, _i64, _i64, _i64, _i64, _i64)


def _fill_sig(t):
    return types.void(_P(t), _i64, t)


# name -> (C wrapper in helpers, its signature for a dtype)
ENTRIES = {
    "mm": (helpers.mm_at, _mm_sig),
    "fill_n": (helpers.fill_n_at, _fill_sig),
}
# the four transpositions are one C entry with strides: one compile of the
# register-tiled matmul per dtype on a new machine (about 8 s), not four
MATMULS = ("mm_nn", "mm_tn", "mm_nt", "mm_tt")
NAMES = MATMULS + ("fill_n", "copy_n", "link")
"""What generated modules import from here."""

_linked: dict[str, object] = {}


def symbol(name: str, dt: str) -> str:
    return f"metacc_{name}_{dt}"


def link(*entries: str) -> None:
    """Make `NAME_DTYPE` (e.g. "mm_nn_f32") callable from kernels: compile its
    cfunc (or load it from the cache) and register its address with LLVM."""
    # under Numba's own compiler lock: a kernel being compiled links from its codegen
    # (holding that lock), so a lock of our own could be taken in the other order
    with global_compiler_lock:
        for e in entries:
            if e in _linked:
                continue
            name, dt = e.rsplit("_", 1)
            name = "mm" if name in MATMULS else name
            if f"{name}_{dt}" in _linked:
                _linked[e] = _linked[f"{name}_{dt}"]
                continue
            wrapper, sig = ENTRIES[name]
            c = cfunc(sig(DTYPES[dt]), cache=True, error_model="numpy")(wrapper)
            llvm.add_symbol(symbol(name, dt), c.address)
            _linked[e] = _linked[f"{name}_{dt}"] = c          # keeps the machine code alive


def _pointer(context, builder, aty, arr, oty, off):
    """&arr[off]: the data pointer of a 1-D buffer moved to an element."""
    ary = context.make_array(aty)(context, builder, arr)
    return builder.gep(ary.data, [context.cast(builder, off, oty, types.intp)], inbounds=True)


def call_symbol(context, builder, sym: str, sig, args):
    """Call the C function registered as `sym` (its signature `sig`): LLVM sees a declaration."""
    fnty = ir.FunctionType(context.get_value_type(sig.return_type),
                           [context.get_value_type(t) for t in sig.args])
    return builder.call(cgutils.get_or_insert_function(builder.module, fnty, sym), args)


def many_arg_intrinsic(name: str, n_args: int, typer):
    """An intrinsic `name(a0, ..., a<n_args-1>)` whose typer(typingctx, args) sees the
    arguments as one tuple: Numba needs one named parameter per argument (it folds a
    *args parameter into a tuple), so the parameters are spelled out."""
    params = ", ".join(f"a{i}" for i in range(n_args))
    space = {"typer": typer}
    exec(f"def {name}(typingctx, {params}):\n    return typer(typingctx, ({params},))\n", space)
    return intrinsic(space[name])


def _call(context, builder, name, dt, args):
    link(f"{name}_{dt}")            # a kernel compiled here is finalised in this process
    call_symbol(context, builder, symbol(name, dt), ENTRIES[name][1](DTYPES[dt]), args)


def _same_dtype(*arrays):
    return (all(isinstance(a, types.Array) for a in arrays) and arrays[0].dtype in SUFFIX
            and all(a.dtype == arrays[0].dtype for a in arrays))


def _matmul(name):
    ta, tb = name[3] == "t", name[4] == "t"      # mm_tn: the left operand is stored transposed

    def typer(typingctx, a, ao, b, bo, out, oo, m, kk, n):
        if not _same_dtype(a, b, out):
            return None

        def codegen(context, builder, sig, args):
            t = sig.args
            ptrs = [_pointer(context, builder, t[j], args[j], t[j + 1], args[j + 1]) for j in (0, 2, 4)]
            m_, kk_, n_ = (context.cast(builder, args[j], t[j], _i64) for j in (6, 7, 8))
            one = ir.Constant(ir.IntType(64), 1)
            # A[i, q] = a[i * sai + q * saq], B[q, j] = b[q * sbq + j * sbj]
            sai, saq = (one, m_) if ta else (kk_, one)
            sbq, sbj = (one, kk_) if tb else (n_, one)
            _call(context, builder, "mm", SUFFIX[t[4].dtype], ptrs + [sai, saq, sbq, sbj, m_, kk_, n_])
            return context.get_dummy_value()
        return types.void(a, ao, b, bo, out, oo, m, kk, n), codegen
    typer.__name__ = typer.__qualname__ = name
    typer.__doc__ = getattr(helpers, name).__doc__
    return intrinsic(typer)


mm_nn = _matmul("mm_nn")
mm_tn = _matmul("mm_tn")
mm_nt = _matmul("mm_nt")
mm_tt = _matmul("mm_tt")


@intrinsic
def fill_n(typingctx, dst, d, n, value):
    """dst[d:d + n] = value."""
    if not _same_dtype(dst):
        return None

    def codegen(context, builder, sig, args):
        t = sig.args
        ptr = _pointer(context, builder, t[0], args[0], t[1], args[1])
        val = context.cast(builder, args[3], t[3], t[0].dtype)
        _call(context, builder, "fill_n", SUFFIX[t[0].dtype],
              [ptr, context.cast(builder, args[2], t[2], _i64), val])
        return context.get_dummy_value()
    return types.void(dst, d, n, value), codegen


@intrinsic
def copy_n(typingctx, dst, d, src, s, n):
    """dst[d:d + n] = src[s:s + n] (a memmove)."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array) and dst.dtype == src.dtype):
        return None

    def codegen(context, builder, sig, args):
        t = sig.args
        to = _pointer(context, builder, t[0], args[0], t[1], args[1])
        frm = _pointer(context, builder, t[2], args[2], t[3], args[3])
        size = context.get_abi_sizeof(context.get_data_type(t[0].dtype))
        cgutils.raw_memmove(builder, to, frm, context.cast(builder, args[4], t[4], types.intp), size)
        return context.get_dummy_value()
    return types.void(dst, d, src, s, n), codegen
