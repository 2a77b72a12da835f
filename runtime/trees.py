"""Checking user arguments against a function's signature, and flattening them.

Parameter groups travel as mappings `name -> array`, tasks as nested mappings
`{'support': {'x': .., 'y': ..}, 'query': {...}}`, tensors as arrays or Python
numbers. Every mistake is a `MetaccError` that names the argument (down to the
field), says what was expected and what was given; nothing reaches a kernel
unchecked, because a kernel indexing a wrong-shaped array would read garbage.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from metacc.errors import MetaccError
from metacc.ir.types import NUMPY_DTYPE, TensorType
from metacc.program import Arg, Field
from metacc.runtime.device import DeviceView, is_device_array


def describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    if isinstance(value, DeviceView):
        return f"{value.dtype} device array of shape {value.shape}"
    if isinstance(value, Mapping):
        return f"a mapping with fields {sorted(map(str, value))}"
    if isinstance(value, (list, tuple)) and value:
        # the items' kinds, not their text (a list of arrays would print every number)
        kinds = sorted({"mapping" if isinstance(v, Mapping) else type(v).__name__ for v in value})
        return f"{type(value).__name__} of {len(value)} ({', '.join(kinds[:4])})"
    return f"{type(value).__name__} {value!r}"[:120]


class Dims:
    """Symbolic dims bound by the arguments of one call (first binding wins)."""

    def __init__(self):
        self.size: dict[str, int] = {}
        self.where: dict[str, str] = {}

    def bind(self, sym: str, size: int, where: str, t: TensorType, value) -> None:
        if size == 0:
            # a declared dim is at least 1; an empty axis would run and give NaN (a mean
            # over nothing) or skip a step (no support points: the unadapted loss)
            raise MetaccError(f"argument '{where}': dim {sym} is 0, and every dim must be at least 1",
                              expected=f"{t} with {sym} >= 1", found=describe(value),
                              hint="drop the empty call (or task batch), or give it at least one row")
        if sym not in self.size:
            self.size[sym] = size
            self.where[sym] = where
        elif self.size[sym] != size:
            raise MetaccError(f"argument '{where}': dim {sym} is {size} here but {self.size[sym]} "
                              f"in '{self.where[sym]}'",
                              expected=f"{t} with {sym} = {self.size[sym]}", found=describe(value),
                              hint=f"every use of {sym} in one call must have the same size")


def _leaf(value, t: TensorType, where: str, dims: Dims, batch: list | None) -> np.ndarray:
    """One array (or number) checked against its type; batch=[B or None] adds a leading task axis."""
    want = NUMPY_DTYPE[t.dtype]
    lead = 1 if batch is not None else 0
    if type(value) is np.ndarray and value.dtype == want and value.ndim == t.rank + lead and batch is None \
            and value.flags.c_contiguous:
        # the common case, checked without building any message
        for d, size in zip(t.shape, value.shape):
            if isinstance(d, int):
                if size != d:
                    break
            elif dims.size.setdefault(d, size) != size or not size:
                break
            else:
                dims.where.setdefault(d, where)
        else:
            return value
    expect = f"{t}" if batch is None else f"{t.dtype}[tasks{''.join(', ' + str(d) for d in t.shape)}]"
    if isinstance(value, Mapping):
        raise MetaccError(f"argument '{where}' should be an array, not a mapping",
                          expected=expect, found=describe(value))
    if type(value) in (float, int, bool) and lead == 0 and t.rank == 0:
        return _scalar(value, t, where)
    if t.dtype == "key" and lead == 0 and isinstance(value, np.integer) and not isinstance(value, np.uint64):
        return _scalar(int(value), t, where)          # a NumPy int seed (np.int64(3)) is a key too
    if isinstance(value, np.ma.MaskedArray):
        # np.asarray would drop the mask and compute with whatever the masked entries hold
        raise MetaccError(f"argument '{where}' is a masked array: metacc has no masks and would "
                          "compute with the masked entries", expected=expect,
                          found=f"masked {describe(np.asarray(value))}",
                          hint="pass value.filled(...) with a fill that suits the computation, "
                               "or leave the masked rows out")
    if is_device_array(value) and (t.rank or lead):
        arr = DeviceView(value)       # checked by its dtype and shape, left on the device
    elif not isinstance(value, (np.ndarray, np.generic)):
        hint = None
        if isinstance(value, (list, tuple)):
            hint = f"convert it with np.asarray(value, dtype=np.{np.dtype(want).name})"
        if t.rank == 0 and lead == 0:
            raise MetaccError(f"argument '{where}' should be a number ({t})", expected=expect,
                              found=describe(value), hint=hint)
        raise MetaccError(f"argument '{where}' should be a NumPy array", expected=expect,
                          found=describe(value), hint=hint)
    else:
        arr = np.asarray(value)
    if arr.dtype != want:
        raise MetaccError(f"argument '{where}' has dtype {arr.dtype}, expected {np.dtype(want).name}",
                          expected=expect, found=describe(arr), hint=_dtype_hint(arr.dtype, want, t))
    if arr.ndim != t.rank + lead:
        hint = None
        if batch is not None and arr.ndim == t.rank:
            hint = "meta functions take a batch of tasks: stack tasks along a new leading axis"
        raise MetaccError(f"argument '{where}' has {arr.ndim} axes, expected {t.rank + lead}",
                          expected=expect, found=describe(arr), hint=hint)
    if batch is not None:
        if batch[0] is None:
            batch[0], batch[1] = arr.shape[0], where
        elif arr.shape[0] != batch[0]:
            raise MetaccError(f"batch axis mismatch: '{where}' has {arr.shape[0]} tasks but "
                              f"'{batch[1]}' has {batch[0]}", expected=f"{batch[0]} tasks on axis 0",
                              found=describe(arr), hint="every task field needs the same number of tasks")
    for axis, d in enumerate(t.shape):
        size = arr.shape[axis + lead]
        if isinstance(d, int):
            if size != d:
                raise MetaccError(f"argument '{where}' has size {size} on axis {axis + lead}, "
                                  f"expected {d}", expected=expect, found=describe(arr))
        else:
            dims.bind(d, size, where, t, arr)
    if arr.ndim == 0:
        return arr[()]
    if isinstance(arr, DeviceView):
        if not arr.contiguous:      # copying it on the device is the caller's choice, not a silent one
            raise MetaccError(f"argument '{where}' is a device array that is not C-contiguous", expected=expect,
                              found=describe(arr), hint="pass a contiguous copy (CuPy: cupy.ascontiguousarray, "
                                                        "PyTorch: .contiguous(), numba: .copy_to_device of a copy)")
        return arr.value
    return np.ascontiguousarray(arr)


_F32 = np.dtype(np.float32)
_F32_MAX = float(np.finfo(np.float32).max)
_LIMITS = {"f32": _F32_MAX, "f64": float(np.finfo(np.float64).max)}
_INT_RANGE = {"i64": (-2 ** 63, 2 ** 63 - 1, "-2**63 .. 2**63 - 1"),
              "key": (0, 2 ** 64 - 1, "0 .. 2**64 - 1")}


def _scalar(value, t: TensorType, where: str):
    """A Python bool, int or float given for a scalar argument, checked: no bool taken
    for a number, no number for a bool, no value that the argument's dtype cannot hold
    (NaN and inf are the caller's to give)."""
    dt = t.dtype
    if type(value) is bool and dt != "bool":
        fix = "1.0 or 0.0" if dt in ("f32", "f64") else "an int"
        what = "a random key" if dt == "key" else str(t)
        raise MetaccError(f"argument '{where}' is {what} but was given {value}: a bool is not taken for a number",
                          expected=str(t) if dt != "key" else "key", found=describe(value),
                          hint=f"pass {fix} if a number is meant")
    if dt in ("f32", "f64"):
        try:
            x = float(value)
        except OverflowError:                     # an int beyond every float
            x = None
        if x is None or (abs(x) > _LIMITS[dt] and x == x and abs(x) != float("inf")):
            shown = f"{x:.6g}" if x is not None else f"an int of {len(str(abs(value)))} digits"
            raise MetaccError(f"argument '{where}' is {shown}, "
                              f"beyond the largest finite {dt} ({_LIMITS[dt]:.6g}): it would become inf",
                              expected=f"{t}, |value| <= {_LIMITS[dt]:.6g}", found=describe(value),
                              hint="rescale it" + (", or compile the module with dtype='f64'"
                                                   if dt == "f32" else ""))
        return NUMPY_DTYPE[dt](x)
    if dt in _INT_RANGE:
        lo, hi, text = _INT_RANGE[dt]
        what = "a random key" if dt == "key" else "an i64"
        if type(value) is not int:
            raise MetaccError(f"argument '{where}' is {what}: an integer in {text}",
                              expected="key" if dt == "key" else str(t), found=describe(value),
                              hint="pass an int" + (" (int(x) if a whole number is meant)"
                                                    if isinstance(value, float) and value.is_integer() else ""))
        if not lo <= value <= hi:
            raise MetaccError(f"argument '{where}' is {what}: {value} is outside {text}",
                              expected="key" if dt == "key" else str(t), found=describe(value),
                              hint="derive many keys from one seed with fold_in(key, i) in the program"
                                   if dt == "key" and value > hi else None)
        return NUMPY_DTYPE[dt](value)
    if type(value) is not bool:
        raise MetaccError(f"argument '{where}' is a bool: True or False", expected=str(t),
                          found=describe(value), hint="pass a comparison's result (x > 0) or bool(x)")
    return np.bool_(value)


def _dtype_hint(got: np.dtype, want, t: TensorType) -> str:
    name = np.dtype(want).name
    if got.kind == "O":
        return ("an object array holds Python objects (ragged nested lists, mixed types, None): "
                f"build a rectangular numeric array, e.g. np.asarray(rows, dtype=np.{name})")
    if got.kind == "c":
        return "metacc computes with real numbers: pass the real and imaginary parts as separate arrays"
    if got.kind in "USV":
        return f"this array holds {'strings' if got.kind != 'V' else 'raw records'}, not numbers"
    return (f"convert it with .astype(np.{name})"
            + (", or compile the module with dtype='f64'" if t.dtype == "f32" else "")
            + "; metacc never converts floats silently")


_LEVELS: dict[int, tuple] = {}


def _levels(arg: Arg) -> dict[str, list[str]]:
    """For a tree argument: the expected field names at each level ('' = top)."""
    hit = _LEVELS.get(id(arg))           # by identity: hashing a whole signature costs more
    if hit is not None and hit[0] is arg:
        return hit[1]
    levels: dict[str, list[str]] = {}
    for f in arg.leaves:
        parts = f.path.split(".")
        for i, p in enumerate(parts):
            key = ".".join(parts[:i])
            levels.setdefault(key, [])
            if p not in levels[key]:
                levels[key].append(p)
    _LEVELS[id(arg)] = (arg, levels)
    return levels


_PLANS: dict[int, tuple] = {}


def _plan(arg: Arg):
    """Per argument, once: each leaf's path, NumPy dtype, rank, its shape when no symbolic
    dim is in it (one tuple comparison then checks it) else its (axis, dim) pairs, and the
    name a dim it binds is reported under; each tree level's size."""
    hit = _PLANS.get(id(arg))
    if hit is not None and hit[0] is arg:
        return hit[1]
    leaves = []
    for f in arg.leaves:
        shape = f.type.shape
        fixed = tuple(shape) if all(d.__class__ is int for d in shape) else None
        axes = tuple(enumerate(shape))
        leaves.append((tuple(f.path.split(".")) if f.path else (), np.dtype(NUMPY_DTYPE[f.type.dtype]),
                       f.type.rank, fixed, axes, f"{arg.name}.{f.path}" if f.path else arg.name))
    levels = tuple((tuple(k.split(".")) if k else (), len(v)) for k, v in _levels(arg).items()) \
        if arg.kind in ("params", "task") else ()
    _PLANS[id(arg)] = (arg, (leaves, levels))
    return leaves, levels


def _fast(arg: Arg, value, dims: Dims, batch: list | None) -> list | None:
    """The leaves when everything is as expected (dicts of contiguous arrays of the
    right dtype and shape), checked without building a message; None sends the
    call through the full check, which explains what is wrong."""
    leaves, levels = _plan(arg)
    lead = 1 if batch is not None else 0
    for path, size in levels:
        node = value
        for part in path:
            if type(node) is not dict or part not in node:
                return None
            node = node[part]
        if type(node) is not dict or len(node) != size:
            return None
    sizes, where = dims.size, dims.where
    out = []
    for path, want, rank, fixed, axes, label in leaves:
        v = value
        for part in path:
            v = v.get(part) if type(v) is dict else None
        if type(v) is not np.ndarray:
            if rank == 0 and lead == 0 and type(v) is float and want.kind == "f":
                if want is _F32 and not -_F32_MAX <= v <= _F32_MAX:
                    return None     # would overflow to inf (or is inf/NaN): the full check decides
                out.append(want.type(v))
                continue
            if rank == 0 and lead == 0 and type(v) is want.type:
                out.append(v)
                continue
            return None
        vs = v.shape
        if v.dtype != want or len(vs) != rank + lead or not v.flags.c_contiguous:
            return None
        if lead:
            if batch[0] is None:
                batch[0], batch[1] = vs[0], label
            elif vs[0] != batch[0]:
                return None
        if fixed is not None:
            if (vs[1:] if lead else vs) != fixed:
                return None
        else:
            for axis, d in axes:
                size = vs[axis + lead]
                if d.__class__ is int:
                    if size != d:
                        return None
                    continue
                bound = sizes.get(d)
                if bound is None:
                    if not size:
                        return None         # 0: the full check says why
                    sizes[d] = size
                    where[d] = label
                elif bound != size:
                    return None
        out.append(v if rank or lead else v[()])
    return out


def fast_flatten(args_values, dims: Dims, batch: list) -> list | None:
    """All arguments at once on the common path: [(arg, value, batched), ...] -> leaves,
    or None when anything is unusual (then `flatten_arg` checks each one and explains)."""
    out = []
    for arg, value, batched in args_values:
        leaves = _fast(arg, value, dims, batch if batched else None)
        if leaves is None:
            return None
        out += leaves
    return out


def flatten_arg(arg: Arg, value, dims: Dims, batch: list | None, name: str | None = None) -> list:
    """The IR leaves of one argument, checked. `name` overrides how it is reported."""
    where = name or arg.name
    if arg.kind in ("params", "task"):
        levels = _levels(arg)
        for key, fields in levels.items():
            node = value
            for part in key.split(".") if key else []:
                node = node[part]
            here = f"{where}.{key}" if key else where
            if not isinstance(node, Mapping):
                hint = None
                if batch is not None and not key and isinstance(node, (list, tuple)) \
                        and all(isinstance(v, Mapping) for v in node):
                    hint = ("a batch of tasks is one mapping whose arrays have a leading task axis: "
                            "stack the fields (np.stack([t['support']['x'] for t in tasks]), ...)")
                raise MetaccError(f"argument '{here}' should be a mapping of {arg.type_name} fields",
                                  expected=f"fields {fields}", found=describe(node), hint=hint)
            missing = [f for f in fields if f not in node]
            extra = sorted(str(f) for f in node if f not in fields)
            if missing or extra:
                what = []
                if missing:
                    what.append(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
                if extra:
                    what.append(f"unknown field{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}")
                raise MetaccError(f"argument '{here}' ({arg.type_name}): {' and '.join(what)}",
                                  expected=f"fields {fields}", found=f"fields {sorted(map(str, node))}")
        out = []
        for f in arg.leaves:
            node = value
            for part in f.path.split("."):
                node = node[part]
            out.append(_leaf(node, f.type, f"{where}.{f.path}", dims, batch))
        return out
    (f,) = arg.leaves
    return [_leaf(value, f.type, where, dims, batch)]


def unflatten(arg_or_fields, leaves: list):
    """Leaves back into the user's tree: a dict for a group (nested for a task), else the array."""
    fields: tuple[Field, ...] = arg_or_fields.leaves if isinstance(arg_or_fields, Arg) else arg_or_fields
    kind = arg_or_fields.kind if isinstance(arg_or_fields, Arg) else "params"
    if kind not in ("params", "task"):
        return leaves[0]
    out: dict = {}
    for f, v in zip(fields, leaves):
        node = out
        parts = f.path.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return out
