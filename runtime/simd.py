"""Explicit 256-bit SIMD registers for the matmul helpers.

LLVM vectorises a loop over the columns of an output row, but it keeps the
row in memory (a load and a store per multiply-add) because it cannot prove
that the output does not alias the inputs: every buffer of a kernel lives in
one workspace array. A small matmul then runs at 10-18 GFLOP/s. Holding a
tile of the output in registers needs a value that *is* a vector, which
Numba does not have; this module adds one (`Vec`, an LLVM `<8 x float>` or
`<4 x double>`) and four operations on it. With a 4 x 2-vector tile the
10x40x40 product of P1 runs at ~50 GFLOP/s in float32.

Only helpers use these: generated kernels never see a `Vec`.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, register_model

WIDTH_BYTES = 32          # AVX2; LLVM splits wider vectors on narrower machines


class Vec(types.Type):
    """`lanes` values of `dtype` in one register."""

    def __init__(self, dtype, lanes: int):
        self.dtype, self.lanes = dtype, lanes
        super().__init__(name=f"Vec({dtype} x {lanes})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        elt = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(elt, fe_type.lanes))


def _vec_of(dtype) -> Vec:
    return Vec(dtype, WIDTH_BYTES // (dtype.bitwidth // 8))


def _vec_ptr(context, builder, arrty, arr, idx, vt):
    ary = context.make_array(arrty)(context, builder, arr)
    ptr = builder.gep(ary.data, [idx], inbounds=True)
    return builder.bitcast(ptr, context.get_value_type(vt).as_pointer())


@intrinsic
def vzero(typingctx, arr):
    """A register of zeros of arr's dtype."""
    vt = _vec_of(arr.dtype)

    def codegen(context, builder, sig, args):
        lt = context.get_value_type(vt)
        return ir.Constant(lt, [ir.Constant(lt.element, 0.0)] * lt.count)
    return vt(arr), codegen


@intrinsic
def vload(typingctx, arr, idx):
    """arr[idx : idx + lanes] (unchecked; unaligned is fine)."""
    vt = _vec_of(arr.dtype)

    def codegen(context, builder, sig, args):
        ptr = _vec_ptr(context, builder, sig.args[0], args[0], args[1], vt)
        return builder.load(ptr, align=arr.dtype.bitwidth // 8)
    return vt(arr, idx), codegen


@intrinsic
def vstore(typingctx, arr, idx, v):
    """arr[idx : idx + lanes] = v (unchecked)."""
    def codegen(context, builder, sig, args):
        ptr = _vec_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[2])
        builder.store(args[2], ptr, align=arr.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.void(arr, idx, v), codegen


@intrinsic
def vfma(typingctx, acc, a, b):
    """acc + a * b, lane by lane; a scalar a is broadcast. Fused where the
    machine has FMA."""
    if not isinstance(acc, Vec) or acc != b or (a != acc.dtype and a != acc):
        return None

    def codegen(context, builder, sig, args):
        vt = args[0].type
        x = args[1]
        if not isinstance(sig.args[1], Vec):
            n = vt.count
            x = builder.insert_element(ir.Constant(vt, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
            x = builder.shuffle_vector(x, ir.Constant(vt, ir.Undefined),
                                       ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n))
        return builder.fadd(args[0], builder.fmul(x, args[2], flags=("contract",)), flags=("contract",))
    return acc(acc, a, b), codegen


def _shuffle(builder, x, y, idx):
    return builder.shuffle_vector(x, y, ir.Constant(ir.VectorType(ir.IntType(32), len(idx)), idx))


@intrinsic
def vtranspose(typingctx, src, so, lds, dst, do, ldd):
    """One lanes x lanes block: dst[do + c * ldd + r] = src[so + r * lds + c],
    through registers (unpack / shuffle stages, as a hand-written AVX
    transpose does), so a block costs a few instructions per row."""
    vt = _vec_of(src.dtype)
    if dst.dtype != src.dtype:
        return None

    def codegen(context, builder, sig, args):
        n = vt.lanes
        rows = []
        for r in range(n):
            off = builder.add(args[1], builder.mul(args[2], ir.Constant(args[2].type, r)))
            rows.append(builder.load(_vec_ptr(context, builder, sig.args[0], args[0], off, vt),
                                     align=src.dtype.bitwidth // 8))
        if n == 8:
            t = []
            for r in range(0, 8, 2):
                t.append(_shuffle(builder, rows[r], rows[r + 1], [0, 8, 1, 9, 4, 12, 5, 13]))
                t.append(_shuffle(builder, rows[r], rows[r + 1], [2, 10, 3, 11, 6, 14, 7, 15]))
            # t[0], t[1] from rows 0-1; t[2], t[3] from rows 2-3; ...
            lo, hi = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
            u = [None] * 8
            for g in (0, 4):                  # rows 0-3, rows 4-7
                a0, a1, b0, b1 = t[g], t[g + 1], t[g + 2], t[g + 3]
                u[g + 0] = _shuffle(builder, a0, b0, lo)
                u[g + 1] = _shuffle(builder, a0, b0, hi)
                u[g + 2] = _shuffle(builder, a1, b1, lo)
                u[g + 3] = _shuffle(builder, a1, b1, hi)
            cols = [None] * 8
            for c in range(4):
                cols[c] = _shuffle(builder, u[c], u[4 + c], [0, 1, 2, 3, 8, 9, 10, 11])
                cols[c + 4] = _shuffle(builder, u[c], u[4 + c], [4, 5, 6, 7, 12, 13, 14, 15])
        elif n == 4:
            t0 = _shuffle(builder, rows[0], rows[1], [0, 4, 2, 6])
            t1 = _shuffle(builder, rows[0], rows[1], [1, 5, 3, 7])
            t2 = _shuffle(builder, rows[2], rows[3], [0, 4, 2, 6])
            t3 = _shuffle(builder, rows[2], rows[3], [1, 5, 3, 7])
            cols = [_shuffle(builder, t0, t2, [0, 1, 4, 5]), _shuffle(builder, t1, t3, [0, 1, 4, 5]),
                    _shuffle(builder, t0, t2, [2, 3, 6, 7]), _shuffle(builder, t1, t3, [2, 3, 6, 7])]
        else:
            raise NotImplementedError(f"vtranspose of {n} lanes")
        for c in range(n):
            off = builder.add(args[4], builder.mul(args[5], ir.Constant(args[5].type, c)))
            builder.store(cols[c], _vec_ptr(context, builder, sig.args[3], args[3], off, vt),
                          align=src.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.void(src, so, lds, dst, do, ldd), codegen
