"""Compiled helpers that generated kernels call: one copy, cached once per machine.

Numba spends tens of milliseconds compiling every loop nest it meets, but a
call to an already compiled function costs it only a few; so the kernels
call these for matmuls, copies, fills and solves instead of spelling the
loops out each time, and spell out only the fused elementwise loops that are
particular to one program.

Every array here is 1-D: kernels address their buffers as (array, offset)
with row-major layout (see metacc.backend.lower).
"""
from __future__ import annotations

import llvmlite.binding as llvm_binding
import numpy as np
from llvmlite import ir
from numba import config as numba_config
from numba import njit, types
from numba.extending import intrinsic, models, register_model
from numba.np.arrayobj import populate_array

OPTS = dict(cache=True, error_model="numpy")


# Unchecked element access. Numba's `a[i]` also accepts negative i, which puts a
# select on every access; LLVM cannot prove `off + i0 * 40 + i1` non-negative,
# so the select stays in the loop and the loop does not vectorise (a 10x40x40
# matmul took 26 us through `a[i]`, 4 us through these).

@intrinsic
def ld(typingctx, arr, idx):
    """arr[idx] for 0 <= idx < arr.size, without the negative-index fix-up."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]], inbounds=True)
        return context.unpack_value(builder, sig.args[0].dtype, ptr)    # bools are bytes in memory
    return arr.dtype(arr, idx), codegen


@intrinsic
def st(typingctx, arr, idx, val):
    """arr[idx] = val (converted to arr's dtype) for 0 <= idx < arr.size."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        v = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        context.pack_value(builder, sig.args[0].dtype, v, builder.gep(ary.data, [args[1]], inbounds=True))
        return context.get_dummy_value()
    return types.void(arr, idx, val), codegen


# ---- explicit 256-bit SIMD registers for the matmul helpers ----
#
# LLVM vectorises a loop over the columns of an output row, but it keeps the
# row in memory (a load and a store per multiply-add) because it cannot prove
# that the output does not alias the inputs: every buffer of a kernel lives in
# one workspace array. A small matmul then runs at 10-18 GFLOP/s. Holding a
# tile of the output in registers needs a value that *is* a vector, which
# Numba does not have; this section adds one (`Vec`, an LLVM `<8 x float>` or
# `<4 x double>`) and the operations on it. With a 4 x 2-vector tile the
# 10x40x40 product of P1 runs at ~50 GFLOP/s in float32.
#
# Only helpers use these: generated kernels never see a `Vec`.
#
# (Here, not in a module of their own: Numba's cache notices edits to the file
# a cached function is defined in, and nothing else; an edit to a separate
# module would leave stale machine code behind.)

WIDTH_BYTES = 32          # AVX2; LLVM splits wider vectors on narrower machines


def vector_registers(features: str | None = None) -> int:
    """SIMD registers LLVM can give 256-bit vectors on the target: 32 where AVX-512VL
    is there (ymm16-31), else 16. `features`: LLVM's feature string ("+avx2,-avx512vl,...");
    by default Numba's target (NUMBA_CPU_FEATURES where set, else the host's)."""
    if features is None:
        features = numba_config.CPU_FEATURES
        if features is None:
            features = llvm_binding.get_host_cpu_features().flatten()
    return 32 if "+avx512vl" in features.split(",") else 16


# With 32 registers, gemm takes 5 registers across (40 float32 columns, P1's width) in
# tiles of 4 rows (20 accumulators): every accumulator chain then has others to hide its
# FMA latency behind, where the 4 x 2 tiles leave the last columns and rows with too few
# (a 10x40x40 float32 product: 0.41 -> 0.37 us here). With 16 they would spill.
WIDE_TILES = vector_registers() >= 32


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
        else:                                 # other widths (1- and 2-byte dtypes): lane by lane
            cols = []
            for c in range(n):
                v = ir.Constant(rows[0].type, ir.Undefined)
                for r in range(n):
                    x = builder.extract_element(rows[r], ir.Constant(ir.IntType(32), c))
                    v = builder.insert_element(v, x, ir.Constant(ir.IntType(32), r))
                cols.append(v)
        for c in range(n):
            off = builder.add(args[4], builder.mul(args[5], ir.Constant(args[5].type, c)))
            builder.store(cols[c], _vec_ptr(context, builder, sig.args[3], args[3], off, vt),
                          align=src.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.void(src, so, lds, dst, do, ldd), codegen


SCRATCH = 4096    # elements of stack_scratch: 16 KiB of float32, 32 KiB of float64


@intrinsic
def stack_scratch(typingctx, like):
    """A 1-D array of SCRATCH elements of like's dtype on the caller's stack (uninitialised).

    The block is an `alloca` in the function's entry block, so taking it costs a
    stack-pointer move, against a malloc and a free for np.empty; it lives until
    the function returns, and nothing may keep it past that."""
    arrty = types.Array(like.dtype, 1, "C")

    def codegen(context, builder, sig, args):
        elt = context.get_data_type(like.dtype)
        with builder.goto_entry_block():
            block = builder.alloca(ir.ArrayType(elt, SCRATCH))
        data = builder.bitcast(block, elt.as_pointer())
        ary = context.make_array(arrty)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(elt))
        populate_array(ary, data=data, shape=[context.get_constant(types.intp, SCRATCH)],
                       strides=[itemsize], itemsize=itemsize, meminfo=None)
        return ary._getvalue()
    return arrty(like), codegen


@njit(**OPTS)
def copy_n(dst, d, src, s, n):
    for i in range(n):
        st(dst, d + i, ld(src, s + i))


@njit(**OPTS)
def fill_n(dst, d, n, value):
    for i in range(n):
        st(dst, d + i, value)


# Reassociating the sums of a dot product lets LLVM vectorise it (results move by
# rounding only, far inside the 1e-10 the backends are held to).
FAST = dict(OPTS, fastmath={"reassoc", "contract", "nsz"})
NARROW = 16       # below this many output columns, dot products beat row updates


@njit(**OPTS)
def _tile_4x5(a, a0, sai, saq, b, bo, ldb, out, r, ldo, kk, L):
    """out rows [r, r + 4 ldo) x 5 registers from column offset bo (see gemm)."""
    c00 = vzero(out)
    c01 = vzero(out)
    c02 = vzero(out)
    c03 = vzero(out)
    c04 = vzero(out)
    c10 = vzero(out)
    c11 = vzero(out)
    c12 = vzero(out)
    c13 = vzero(out)
    c14 = vzero(out)
    c20 = vzero(out)
    c21 = vzero(out)
    c22 = vzero(out)
    c23 = vzero(out)
    c24 = vzero(out)
    c30 = vzero(out)
    c31 = vzero(out)
    c32 = vzero(out)
    c33 = vzero(out)
    c34 = vzero(out)
    for q in range(kk):
        p = bo + q * ldb
        b0 = vload(b, p)
        b1 = vload(b, p + L)
        b2 = vload(b, p + 2 * L)
        b3 = vload(b, p + 3 * L)
        b4 = vload(b, p + 4 * L)
        x = ld(a, a0 + q * saq)
        c00 = vfma(c00, x, b0)
        c01 = vfma(c01, x, b1)
        c02 = vfma(c02, x, b2)
        c03 = vfma(c03, x, b3)
        c04 = vfma(c04, x, b4)
        x = ld(a, a0 + sai + q * saq)
        c10 = vfma(c10, x, b0)
        c11 = vfma(c11, x, b1)
        c12 = vfma(c12, x, b2)
        c13 = vfma(c13, x, b3)
        c14 = vfma(c14, x, b4)
        x = ld(a, a0 + 2 * sai + q * saq)
        c20 = vfma(c20, x, b0)
        c21 = vfma(c21, x, b1)
        c22 = vfma(c22, x, b2)
        c23 = vfma(c23, x, b3)
        c24 = vfma(c24, x, b4)
        x = ld(a, a0 + 3 * sai + q * saq)
        c30 = vfma(c30, x, b0)
        c31 = vfma(c31, x, b1)
        c32 = vfma(c32, x, b2)
        c33 = vfma(c33, x, b3)
        c34 = vfma(c34, x, b4)
    vstore(out, r, c00)
    vstore(out, r + L, c01)
    vstore(out, r + 2 * L, c02)
    vstore(out, r + 3 * L, c03)
    vstore(out, r + 4 * L, c04)
    r += ldo
    vstore(out, r, c10)
    vstore(out, r + L, c11)
    vstore(out, r + 2 * L, c12)
    vstore(out, r + 3 * L, c13)
    vstore(out, r + 4 * L, c14)
    r += ldo
    vstore(out, r, c20)
    vstore(out, r + L, c21)
    vstore(out, r + 2 * L, c22)
    vstore(out, r + 3 * L, c23)
    vstore(out, r + 4 * L, c24)
    r += ldo
    vstore(out, r, c30)
    vstore(out, r + L, c31)
    vstore(out, r + 2 * L, c32)
    vstore(out, r + 3 * L, c33)
    vstore(out, r + 4 * L, c34)


@njit(**OPTS)
def _tile_2x5(a, a0, sai, saq, b, bo, ldb, out, r, ldo, kk, L):
    """Two rows of _tile_4x5 (10 accumulators: still enough to hide the FMA latency).
    Written out again rather than used twice for the 4-row band: two 2-row passes match
    one 4-row pass in isolation, but P1's step ran ~4% slower with them (minima, A/B)."""
    c00 = vzero(out)
    c01 = vzero(out)
    c02 = vzero(out)
    c03 = vzero(out)
    c04 = vzero(out)
    c10 = vzero(out)
    c11 = vzero(out)
    c12 = vzero(out)
    c13 = vzero(out)
    c14 = vzero(out)
    for q in range(kk):
        p = bo + q * ldb
        b0 = vload(b, p)
        b1 = vload(b, p + L)
        b2 = vload(b, p + 2 * L)
        b3 = vload(b, p + 3 * L)
        b4 = vload(b, p + 4 * L)
        x = ld(a, a0 + q * saq)
        c00 = vfma(c00, x, b0)
        c01 = vfma(c01, x, b1)
        c02 = vfma(c02, x, b2)
        c03 = vfma(c03, x, b3)
        c04 = vfma(c04, x, b4)
        x = ld(a, a0 + sai + q * saq)
        c10 = vfma(c10, x, b0)
        c11 = vfma(c11, x, b1)
        c12 = vfma(c12, x, b2)
        c13 = vfma(c13, x, b3)
        c14 = vfma(c14, x, b4)
    vstore(out, r, c00)
    vstore(out, r + L, c01)
    vstore(out, r + 2 * L, c02)
    vstore(out, r + 3 * L, c03)
    vstore(out, r + 4 * L, c04)
    r += ldo
    vstore(out, r, c10)
    vstore(out, r + L, c11)
    vstore(out, r + 2 * L, c12)
    vstore(out, r + 3 * L, c13)
    vstore(out, r + 4 * L, c14)


@njit(**OPTS)
def gemm(a, ao, sai, saq, b, bo, ldb, out, oo, ldo, m, kk, n):
    """out[m, n] = A @ B with A[i, q] = a[ao + i * sai + q * saq] (a matrix or
    a transposed one), B[q, j] = b[bo + q * ldb + j] and out[i, j] at
    oo + i * ldo + j.

    Tiles of 4 rows x 2 registers of the output (4 x 5 first, with 32 registers:
    WIDE_TILES) stay in registers over the whole kk loop (the SIMD registers above);
    the columns past the last full register and the rows past the last full tile take
    narrower paths."""
    L = 32 // out.itemsize                # lanes of a register
    i = 0
    while i + 4 <= m:
        a0, a1, a2, a3 = ao + i * sai, ao + (i + 1) * sai, ao + (i + 2) * sai, ao + (i + 3) * sai
        j = 0
        if WIDE_TILES:
            while j + 5 * L <= n:
                _tile_4x5(a, a0, sai, saq, b, bo + j, ldb, out, oo + i * ldo + j, ldo, kk, L)
                j += 5 * L
        while j + 2 * L <= n:
            c00 = vzero(out)
            c01 = vzero(out)
            c10 = vzero(out)
            c11 = vzero(out)
            c20 = vzero(out)
            c21 = vzero(out)
            c30 = vzero(out)
            c31 = vzero(out)
            for q in range(kk):
                b0 = vload(b, bo + q * ldb + j)
                b1 = vload(b, bo + q * ldb + j + L)
                x = ld(a, a0 + q * saq)
                c00 = vfma(c00, x, b0)
                c01 = vfma(c01, x, b1)
                x = ld(a, a1 + q * saq)
                c10 = vfma(c10, x, b0)
                c11 = vfma(c11, x, b1)
                x = ld(a, a2 + q * saq)
                c20 = vfma(c20, x, b0)
                c21 = vfma(c21, x, b1)
                x = ld(a, a3 + q * saq)
                c30 = vfma(c30, x, b0)
                c31 = vfma(c31, x, b1)
            r = oo + i * ldo + j
            vstore(out, r, c00)
            vstore(out, r + L, c01)
            vstore(out, r + ldo, c10)
            vstore(out, r + ldo + L, c11)
            vstore(out, r + 2 * ldo, c20)
            vstore(out, r + 2 * ldo + L, c21)
            vstore(out, r + 3 * ldo, c30)
            vstore(out, r + 3 * ldo + L, c31)
            j += 2 * L
        while j + L <= n:
            c0 = vzero(out)
            c1 = vzero(out)
            c2 = vzero(out)
            c3 = vzero(out)
            for q in range(kk):
                b0 = vload(b, bo + q * ldb + j)
                c0 = vfma(c0, ld(a, a0 + q * saq), b0)
                c1 = vfma(c1, ld(a, a1 + q * saq), b0)
                c2 = vfma(c2, ld(a, a2 + q * saq), b0)
                c3 = vfma(c3, ld(a, a3 + q * saq), b0)
            r = oo + i * ldo + j
            vstore(out, r, c0)
            vstore(out, r + ldo, c1)
            vstore(out, r + 2 * ldo, c2)
            vstore(out, r + 3 * ldo, c3)
            j += L
        if j < n:
            _gemm_cols(a, ao, sai, saq, b, bo, ldb, out, oo, ldo, i, i + 4, j, kk, n)
        i += 4
    if i + 2 <= m:                        # two rows left over (P1's 10 = 4 + 4 + 2)
        a0, a1 = ao + i * sai, ao + (i + 1) * sai
        j = 0
        if WIDE_TILES:
            while j + 5 * L <= n:
                _tile_2x5(a, a0, sai, saq, b, bo + j, ldb, out, oo + i * ldo + j, ldo, kk, L)
                j += 5 * L
        while j + 2 * L <= n:
            c00 = vzero(out)
            c01 = vzero(out)
            c10 = vzero(out)
            c11 = vzero(out)
            for q in range(kk):
                b0 = vload(b, bo + q * ldb + j)
                b1 = vload(b, bo + q * ldb + j + L)
                x = ld(a, a0 + q * saq)
                c00 = vfma(c00, x, b0)
                c01 = vfma(c01, x, b1)
                x = ld(a, a1 + q * saq)
                c10 = vfma(c10, x, b0)
                c11 = vfma(c11, x, b1)
            r = oo + i * ldo + j
            vstore(out, r, c00)
            vstore(out, r + L, c01)
            vstore(out, r + ldo, c10)
            vstore(out, r + ldo + L, c11)
            j += 2 * L
        while j + L <= n:
            c0 = vzero(out)
            c1 = vzero(out)
            for q in range(kk):
                b0 = vload(b, bo + q * ldb + j)
                c0 = vfma(c0, ld(a, a0 + q * saq), b0)
                c1 = vfma(c1, ld(a, a1 + q * saq), b0)
            r = oo + i * ldo + j
            vstore(out, r, c0)
            vstore(out, r + ldo, c1)
            j += L
        if j < n:
            _gemm_cols(a, ao, sai, saq, b, bo, ldb, out, oo, ldo, i, i + 2, j, kk, n)
        i += 2
    while i < m:
        ai = ao + i * sai
        j = 0
        while j + L <= n:
            c0 = vzero(out)
            for q in range(kk):
                c0 = vfma(c0, ld(a, ai + q * saq), vload(b, bo + q * ldb + j))
            vstore(out, oo + i * ldo + j, c0)
            j += L
        if j < n:
            _gemm_cols(a, ao, sai, saq, b, bo, ldb, out, oo, ldo, i, i + 1, j, kk, n)
        i += 1


@njit(**OPTS)
def _gemm_cols(a, ao, sai, saq, b, bo, ldb, out, oo, ldo, i0, i1, j0, kk, n):
    """The columns j0..n of rows i0..i1 of gemm, one element at a time."""
    for i in range(i0, i1):
        for j in range(j0, n):
            if kk == 0:
                st(out, oo + i * ldo + j, 0)
                continue
            s = ld(a, ao + i * sai) * ld(b, bo + j)
            for q in range(1, kk):
                s += ld(a, ao + i * sai + q * saq) * ld(b, bo + q * ldb + j)
            st(out, oo + i * ldo + j, s)


@njit(**OPTS)
def mm(a, ao, sai, saq, b, bo, sbq, sbj, out, oo, m, kk, n):
    """out[m, n] (row-major) = A @ B for A[i, q] = a[ao + i * sai + q * saq] and
    B[q, j] = b[bo + q * sbq + j * sbj]: every transposition of both operands.

    gemm wants B's rows contiguous and wastes the columns past the last full
    register; when the rows of A fill registers better than the columns of B
    (P1's [40, 40] @ [40, 10]), the product runs transposed, out^T = B^T A^T,
    and the result is transposed back (or not at all: with one row or one
    column, out^T is out's own memory). Operands are copied into row-major
    scratch where gemm needs them so: on the stack up to SCRATCH elements
    (a heap block cost more than the copy in P1's [10, 40] @ [40, 40]^T)."""
    if m == 0 or n == 0:
        return
    L = 32 // out.itemsize
    if n == 1 and saq == 1 and sbq == 1 and kk >= NARROW:
        mm_dots(a, ao, b, bo, out, oo, m, kk, 1, sai)     # one dot product per row
        return
    if n % L != 0 and m >= L and m % L < n % L:
        # out^T[n, m] = B^T[n, kk] @ A^T[kk, m]: B^T[j, q] = b[bo + j * sbj + q * sbq]
        if sai == 1:
            at, ato, lda = a, ao, saq
        else:
            at = stack_scratch(a) if kk * m <= SCRATCH else np.empty(kk * m, a.dtype)
            _row_major(a, ao, saq, sai, at, kk, m)      # A^T[q, i]
            ato, lda = 0, m
        if n == 1:
            gemm(b, bo, sbj, sbq, at, ato, lda, out, oo, m, n, kk, m)
            return
        ot = stack_scratch(out) if n * m <= SCRATCH else np.empty(n * m, out.dtype)
        gemm(b, bo, sbj, sbq, at, ato, lda, ot, 0, m, n, kk, m)
        transpose_n(ot, 0, out, oo, n, m)
        return
    if sbj == 1:
        gemm(a, ao, sai, saq, b, bo, sbq, out, oo, n, m, kk, n)
        return
    bt = stack_scratch(b) if kk * n <= SCRATCH else np.empty(kk * n, b.dtype)
    _row_major(b, bo, sbq, sbj, bt, kk, n)
    gemm(a, ao, sai, saq, bt, 0, n, out, oo, n, m, kk, n)


@njit(**OPTS)
def _row_major(src, so, s_r, s_c, dst, rows, cols):
    """dst[rows, cols], row-major from 0, of the matrix whose element (r, c) is at
    src[so + r * s_r + c * s_c]; a stored transpose goes through register blocks."""
    if s_r == 1 and s_c == rows:
        transpose_n(src, so, dst, 0, cols, rows)
        return
    for r in range(rows):
        for c in range(cols):
            st(dst, r * cols + c, ld(src, so + r * s_r + c * s_c))


@njit(**FAST)
def mm_dots(a, ao, w, wo, out, oo, m, kk, n, lda):
    """out[m, n] = a @ transpose(w), rows of a at stride lda, w stored as
    [n, kk]: one dot product per element (vectorised along kk)."""
    if kk == 0:
        fill_n(out, oo, m * n, 0)
        return
    for i in range(m):
        ai = ao + i * lda
        for j in range(n):
            wj = wo + j * kk
            s = ld(a, ai) * ld(w, wj)
            for q in range(1, kk):
                s += ld(a, ai + q) * ld(w, wj + q)
            st(out, oo + i * n + j, s)


@njit(**OPTS)
def mm_nn(a, ao, b, bo, out, oo, m, kk, n):
    """out[m, n] = a[m, kk] @ b[kk, n]."""
    mm(a, ao, kk, 1, b, bo, n, 1, out, oo, m, kk, n)


@njit(**OPTS)
def mm_tn(x, xo, b, bo, out, oo, m, kk, n):
    """out[m, n] = transpose(x) @ b with x stored as [kk, m] (the adjoint of a weight)."""
    mm(x, xo, 1, m, b, bo, n, 1, out, oo, m, kk, n)


@njit(**OPTS)
def mm_nt(a, ao, w, wo, out, oo, m, kk, n):
    """out[m, n] = a @ transpose(w) with w stored as [n, kk]."""
    mm(a, ao, kk, 1, w, wo, 1, kk, out, oo, m, kk, n)


@njit(**OPTS)
def mm_tt(x, xo, w, wo, out, oo, m, kk, n):
    """out[m, n] = transpose(x) @ transpose(w), x stored as [kk, m], w as [n, kk]."""
    mm(x, xo, 1, m, w, wo, 1, kk, out, oo, m, kk, n)


@njit(**OPTS)
def transpose_n(src, so, dst, do, rows, cols):
    """dst[cols, rows] = transpose(src[rows, cols]): register blocks of lanes x
    lanes (vtranspose), element by element at the edges."""
    L = 32 // src.itemsize
    r0 = rows - rows % L
    c0 = cols - cols % L
    for r in range(0, r0, L):
        for c in range(0, c0, L):
            vtranspose(src, so + r * cols + c, cols, dst, do + c * rows + r, rows)
    for r in range(r0):
        for c in range(c0, cols):
            st(dst, do + c * rows + r, ld(src, so + r * cols + c))
    for r in range(r0, rows):
        for c in range(cols):
            st(dst, do + c * rows + r, ld(src, so + r * cols + c))


@njit(**OPTS)
def lu_solve(a, ao, b, bo, out, oo, lu, lo, piv, po, n, m):
    """out[n, m] = solve(a[n, n], b[n, m]) by LU with partial pivoting; lu and piv are scratch."""
    A = lu[lo:lo + n * n].reshape((n, n))
    X = out[oo:oo + n * m].reshape((n, m))
    A[:, :] = a[ao:ao + n * n].reshape((n, n))
    X[:, :] = b[bo:bo + n * m].reshape((n, m))
    for c in range(n):
        p = c
        best = np.abs(A[c, c])
        for r in range(c + 1, n):
            v = np.abs(A[r, c])
            if v > best:
                best = v
                p = r
        if best == 0 or best != best:
            raise ValueError("metacc: solve: the matrix is singular")
        piv[po + c] = p
        if p != c:
            for j in range(n):
                A[c, j], A[p, j] = A[p, j], A[c, j]
            for j in range(m):
                X[c, j], X[p, j] = X[p, j], X[c, j]
        inv = A[c, c]
        for r in range(c + 1, n):
            f = A[r, c] / inv
            A[r, c] = f
            for j in range(c + 1, n):
                A[r, j] -= f * A[c, j]
            for j in range(m):
                X[r, j] -= f * X[c, j]
    for c in range(n - 1, -1, -1):
        inv = A[c, c]
        for j in range(m):
            s = X[c, j]
            for r in range(c + 1, n):
                s -= A[c, r] * X[r, j]
            X[c, j] = s / inv


# ---- scalar functions, one per float dtype so that float32 stays float32 ----

@njit(**OPTS)
def sigmoid_f64(x):
    e = np.exp(-np.abs(x))          # exp of a non-positive number only: stable in both tails
    return 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)


@njit(**OPTS)
def sigmoid_f32(x):
    e = np.exp(-np.abs(x))
    one = np.float32(1.0)
    return one / (one + e) if x >= np.float32(0.0) else e / (one + e)


@njit(**OPTS)
def softplus_f64(x):
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), as np.logaddexp(x, 0)
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


@njit(**OPTS)
def softplus_f32(x):
    return np.maximum(x, np.float32(0.0)) + np.log1p(np.exp(-np.abs(x)))


# ---- counter-based random numbers: metacc.ir.rng, bit for bit ----

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True)
def mix(z):
    z = z + GOLDEN
    z = (z ^ (z >> np.uint64(30))) * M1
    z = (z ^ (z >> np.uint64(27))) * M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def fold(key, data):
    return mix(np.uint64(key) ^ mix(np.uint64(data)))


@njit(cache=True)
def uniform53(key, counter):
    bits = mix(np.uint64(key) ^ mix(np.uint64(counter)))
    return np.float64(bits >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def uniform_f64(key, counter):
    return uniform53(key, counter)


@njit(cache=True)
def uniform_f32(key, counter):
    return np.float32(uniform53(key, counter))


@njit(**OPTS)
def normal_f64(key, counter):
    # Box-Muller on counters 2j and 2j + 1, in float64 like metacc.ir.rng
    u1 = uniform53(key, 2 * counter)
    u2 = uniform53(key, 2 * counter + 1)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


@njit(**OPTS)
def normal_f32(key, counter):
    return np.float32(normal_f64(key, counter))


NAMES = ("ld", "st", "copy_n", "transpose_n", "mm_dots", "gemm", "_tile_4x5", "_tile_2x5", "_gemm_cols", "mm", "_row_major", "fill_n", "mm_nn", "mm_tn", "mm_nt", "mm_tt", "lu_solve", "sigmoid_f64",
         "sigmoid_f32", "softplus_f64", "softplus_f32", "mix", "fold", "uniform53", "uniform_f64",
         "uniform_f32", "normal_f64", "normal_f32")


# ---- C entry points: what kernels call (through metacc.backend.extern) ----
#
# A kernel that called the helpers above directly would get their LLVM IR linked
# into its own module and optimised again there, every specialisation of every
# one, in every kernel. Kernels instead call these wrappers by address (compiled
# once as C-ABI cfuncs, cached here beside the helpers, so that an edit to this
# file recompiles them): each takes data pointers already offset to the first
# element and views them as arrays of their exact size.

from numba import carray  # noqa: E402


def mm_at(a, b, out, sai, saq, sbq, sbj, m, kk, n):
    """All four transpositions (mm_nn, mm_tn, ...) through one entry: the strides say which."""
    mm(carray(a, m * kk), 0, sai, saq, carray(b, kk * n), 0, sbq, sbj, carray(out, m * n), 0, m, kk, n)


def fill_n_at(dst, n, value):
    fill_n(carray(dst, n), 0, n, value)
