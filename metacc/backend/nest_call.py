"""Calling an outlined loop nest (metacc.backend.outline) from a kernel, by address.

A nest is a C-ABI cfunc, compiled once; the kernel calls it through a pointer held in
a slot, an 8-byte global registered with LLVM under the symbol `metacc_<name>`
(metacc.runtime.nests). The slot's address is fixed before any kernel that calls
the nest is compiled, and its content is filled when the nest is linked, so a kernel
can be compiled while its nests are still being built in worker processes. Its
parameters, by kind:

    "a:f32"   a buffer: passed as the array's data pointer and its length
    "i"       an int64 (an offset, a size, an integer literal of the nest)
    "s:f32"   a scalar of that dtype

and a leading "r:f64" when the nest returns a scalar (a running total).
"""
from __future__ import annotations

from llvmlite import ir
from numba import types

from metacc.backend.extern import many_arg_intrinsic

DTYPES = {"f32": types.float32, "f64": types.float64, "i64": types.int64, "bool": types.boolean,
          "key": types.uint64}
_i64 = types.int64


def c_signature(kinds: tuple[str, ...]):
    """The cfunc's signature: void(pointer, int64 for each buffer; int64; scalar...), or
    a scalar result when kinds opens with "r:<dtype>" (a running total the nest returns)."""
    ret, kinds = returns(kinds)
    args = []
    for k in kinds:
        if k.startswith("a:"):
            args += [types.CPointer(DTYPES[k[2:]]), _i64]
        elif k == "i":
            args.append(_i64)
        else:
            args.append(DTYPES[k[2:]])
    return (DTYPES[ret] if ret else types.void)(*args)


def returns(kinds: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """(the result's dtype or None, the parameters' kinds)."""
    if kinds and kinds[0].startswith("r:"):
        return kinds[0][2:], kinds[1:]
    return None, kinds


def _slot(module, fnty, sym: str):
    """The declaration of the external global that holds the nest's address."""
    try:
        return module.get_global(sym)
    except KeyError:
        slot = ir.GlobalVariable(module, fnty.as_pointer(), sym)
        slot.linkage = "external"
        return slot


def symbol(name: str) -> str:
    return f"metacc_{name}"


def call_intrinsic(name: str, kinds: tuple[str, ...]):
    """An intrinsic `name(args...)` that calls the nest's symbol."""
    sig = c_signature(kinds)
    ret, kinds = returns(kinds)
    result = DTYPES[ret] if ret else types.void

    def typer(typingctx, args):
        if len(args) != len(kinds):
            return None
        for k, a in zip(kinds, args):
            if k.startswith("a:"):
                if not (isinstance(a, types.Array) and a.ndim == 1 and a.dtype == DTYPES[k[2:]]):
                    return None
            elif not isinstance(a, (types.Integer, types.Float, types.Boolean)):
                return None

        def codegen(context, builder, csig, cargs):
            out = []
            for k, t, v in zip(kinds, csig.args, cargs):
                if k.startswith("a:"):
                    ary = context.make_array(t)(context, builder, v)
                    out += [ary.data, ary.nitems]
                else:
                    out.append(context.cast(builder, v, t, _i64 if k == "i" else DTYPES[k[2:]]))
            fnty = ir.FunctionType(context.get_value_type(sig.return_type),
                                   [context.get_value_type(t) for t in sig.args])
            value = builder.call(builder.load(_slot(builder.module, fnty, symbol(name))), out)
            return value if ret else context.get_dummy_value()
        return result(*args), codegen
    return many_arg_intrinsic(name, len(kinds), typer)
