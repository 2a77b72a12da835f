"""Kernels call the convolution family's helpers by address, as they call the matmuls.

Each helper of metacc.backend.conv_helpers.ENTRY_POINTS becomes an intrinsic of the
same name and arguments (every buffer an (array, offset) pair) that calls its C
wrapper through a symbol registered by metacc.backend.extern.link; this module adds
the wrappers to extern's table, so `link("conv2d_nhwc_f32")` compiles (or loads) and
registers them like the matmul's. Without it, every kernel got its own copy of each
helper's LLVM IR, the gemm inside it included, optimised again: a Conv4 MAML kernel
took minutes to build.
"""
from __future__ import annotations

from numba import types

from metacc.backend import extern
from metacc.backend.conv_helpers import ENTRY_POINTS

_P = types.CPointer
_i64 = types.int64


def _signature(layout: str):
    def sig(t):
        kinds = {"b": _P(t), "x": _P(_i64), "i": _i64, "f": t}
        return types.void(*[kinds[k] for k in layout])
    return sig


def _entry(name: str, layout: str):
    n_args = sum(2 if k in "bx" else 1 for k in layout)

    def typer(typingctx, args):
        floats = []
        j = 0
        for k in layout:
            if k in "bx":
                if not isinstance(args[j], types.Array):
                    return None
                if k == "b":
                    floats.append(args[j].dtype)
                j += 2
            else:
                j += 1
        if not floats or any(f != floats[0] for f in floats) or floats[0] not in extern.SUFFIX:
            return None
        dt = floats[0]

        def codegen(context, builder, sig, cargs):
            t = sig.args
            out, j = [], 0
            for k in layout:
                if k in "bx":
                    out.append(extern._pointer(context, builder, t[j], cargs[j], t[j + 1], cargs[j + 1]))
                    j += 2
                else:
                    out.append(context.cast(builder, cargs[j], t[j], _i64 if k == "i" else dt))
                    j += 1
            extern._call(context, builder, name, extern.SUFFIX[dt], out)
            return context.get_dummy_value()
        return types.void(*args), codegen
    return extern.many_arg_intrinsic(name, n_args, typer)


for _name, (_wrapper, _layout) in ENTRY_POINTS.items():
    extern.ENTRIES[_name] = (_wrapper, _signature(_layout))
    globals()[_name] = _entry(_name, _layout)

NAMES = tuple(ENTRY_POINTS)
"""What generated modules import from here."""
