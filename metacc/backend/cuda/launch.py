"""Host side of a CUDA kernel call, called by generated CUDA modules: the argument
checks the simulator does not do, moving NumPy inputs to the device (device arrays
stay where they are), workspace, the fixed-order reduction over tasks, results.

Results are device arrays when any input was a device array (nothing is copied
back), NumPy arrays otherwise; scalar results always come back as NumPy scalars.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from metacc.backend.cuda.device import THREADS, blocks, sum_rows
from metacc.errors import MetaccError
from metacc.runtime.device import DeviceView, is_device_array

NUMPY = {"f32": np.float32, "f64": np.float64, "i64": np.int64, "bool": np.bool_, "key": np.uint64}


def check(args: list, table: tuple) -> None:
    """Each argument against (name, dtype, rank, batched) before any launch, with the
    runtime's messages (metacc.runtime.trees): the simulator would compute with a
    float64 array where float32 is declared, and a real launch fails far from the cause."""
    for x, (name, dt, rank, batched) in zip(args, table):
        want = np.dtype(NUMPY[dt])
        lead = 1 if batched else 0
        if rank + lead == 0:
            continue
        if not (is_device_array(x) or isinstance(x, np.ndarray)):
            raise MetaccError(f"argument '{name}' should be a NumPy or device array", expected=f"{dt}, rank {rank}",
                              found=type(x).__name__)
        v = DeviceView(x) if is_device_array(x) else x       # a PyTorch tensor's dtype is torch's own
        found = f"{np.dtype(v.dtype)} array of shape {tuple(v.shape)}"
        if np.dtype(v.dtype) != want:
            raise MetaccError(f"argument '{name}' has dtype {np.dtype(v.dtype)}, expected {want.name}",
                              expected=want.name, found=found, hint=f"convert it with .astype(np.{want.name})")
        if len(v.shape) != rank + lead:
            raise MetaccError(f"argument '{name}' has {len(v.shape)} axes, expected {rank + lead}", found=found)
        if is_device_array(x) and not v.contiguous:       # NumPy is copied in contiguous anyway
            raise MetaccError(f"argument '{name}' is a device array that is not C-contiguous", found=found,
                              hint="pass a contiguous copy")


def on_device(args: list) -> bool:
    return any(is_device_array(x) for x in args)


def flat(x, dt: str):
    """A flat device array of x: a device array as it is (no copy), NumPy copied in once."""
    if is_device_array(x):
        if type(x).__name__ not in ("DeviceNDArray", "MappedNDArray", "FakeCUDAArray"):
            x = cuda.as_cuda_array(x)       # CuPy, PyTorch: a numba view of the same memory
        return x.reshape(-1) if len(x.shape) != 1 else x
    return cuda.to_device(np.ascontiguousarray(np.asarray(x, NUMPY[dt])).reshape(-1))


def empty(n: int, dt: str):
    return cuda.device_array(max(int(n), 1), NUMPY[dt])


def workspace(lead: int | None, size: int, dt: str):
    shape = (lead, max(int(size), 1)) if lead is not None else (max(int(size), 1),)
    return cuda.device_array(shape, NUMPY[dt])


def grid(n_tasks: int) -> tuple[int, int]:
    return blocks(n_tasks), THREADS


def reduce(rows, n_tasks: int, width: int, how: str, dt: str):
    """rows: [tasks * width] on the device -> [width], summed in task order ('mean'
    divides by the number of tasks); 'stack' keeps the rows."""
    if how == "stack":
        return rows
    out = cuda.device_array(max(width, 1), NUMPY[dt])
    div = NUMPY[dt](n_tasks if how == "mean" else 1)
    sum_rows[blocks(width), THREADS](rows, n_tasks, width, div, out)
    return out


def result(x, shape: tuple, keep: bool, dt: str):
    """An array result in its shape: on the device when `keep`, else copied back."""
    n = int(np.prod(shape)) if shape else 1
    if len(x.shape) != 1 or x.shape[0] != n:
        x = x[:n]
    x = x.reshape(shape) if shape else x
    return x if keep else x.copy_to_host()


def scalar(x, dt: str):
    """A scalar result: one element copied back, as a NumPy scalar of its dtype."""
    return NUMPY[dt](x[:1].copy_to_host()[0])
