"""A batch's per-task rows summed (or averaged) over its tasks, in task order.

A batched entry (metacc.backend.generate) has its task kernel write each task's
outputs into one buffer per dtype, output after output, each output as n_tasks
rows: [o0 task 0, o0 task 1, ..., o1 task 0, ...]. `task_reduce` combines them
in one native call; done with NumPy it took two ufunc calls an output, ~5 µs
each here, as long as a small task's whole kernel.

The rows are added one task after another (element by element: the vector
lanes only hold different elements), so the result never depends on how many
threads ran the tasks, and shards (metacc.runtime.shards) that sum their rows
with the same function reproduce the one-machine call bit for bit.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, error_model="numpy")
def task_reduce(rows, n_tasks, sizes, means):
    """rows: output after output, output o as n_tasks rows of sizes[o] elements.
    -> each output's rows summed in task order, output after output (sizes.sum()
    elements), divided by n_tasks where means[o]."""
    out = np.empty(sizes.sum(), rows.dtype)
    n = rows.dtype.type(n_tasks)
    at = 0                       # where output o's rows start in `rows`
    o_at = 0                     # and its sum in `out`
    for o in range(sizes.shape[0]):
        s = sizes[o]
        acc = out[o_at:o_at + s]
        acc[:] = rows[at:at + s]
        for t in range(1, n_tasks):
            row = rows[at + t * s:at + (t + 1) * s]
            for j in range(s):
                acc[j] += row[j]
        if means[o]:
            for j in range(s):
                acc[j] /= n
        at += n_tasks * s
        o_at += s
    return out


_ONE_SUM = np.zeros(1, np.bool_)


def sum_rows(rows: np.ndarray) -> np.ndarray:
    """One output's [tasks, ...] rows (C order) summed over tasks as task_reduce sums
    them: flat, one element per element of a row."""
    n = rows.shape[0]
    return task_reduce(rows.reshape(-1), n, np.array([rows.size // n], np.int64), _ONE_SUM)
