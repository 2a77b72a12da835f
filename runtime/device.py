"""What counts as a device array: anything with `__cuda_array_interface__` (numba-cuda
device arrays, CuPy, PyTorch CUDA tensors), and the CUDA simulator's FakeCUDAArray,
which has no interface. Checked by duck type, so the runtime never imports numba.cuda."""
from __future__ import annotations

import math

import numpy as np


def is_device_array(value) -> bool:
    return getattr(value, "__cuda_array_interface__", None) is not None \
        or type(value).__name__ == "FakeCUDAArray"


class DeviceView:
    """A device array's dtype and shape as NumPy names them, for the runtime's checks
    (a PyTorch tensor's dtype is torch's own): the checks read the view, the kernel
    gets `value` itself."""

    def __init__(self, value):
        self.value = value
        iface = getattr(value, "__cuda_array_interface__", None)
        self.dtype = np.dtype(iface["typestr"]) if iface is not None else np.dtype(value.dtype)
        self.shape = tuple(int(d) for d in (iface["shape"] if iface is not None else value.shape))
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape)) if self.shape else 1
        if iface is not None:
            strides = iface.get("strides")
            self.contiguous = strides is None or tuple(strides) == _c_strides(self.shape, self.dtype.itemsize)
        else:
            self.contiguous = bool(value.is_c_contiguous()) if hasattr(value, "is_c_contiguous") else True


def _c_strides(shape: tuple, itemsize: int) -> tuple:
    out, step = [], itemsize
    for d in reversed(shape):
        out.append(step)
        step *= d
    return tuple(reversed(out))


_HOST = frozenset({np.ndarray, float, int, bool, np.float32, np.float64, np.int64, np.bool_})
"""Types that are never device arrays: a call's usual leaves skip the duck-type test."""


def device_leaves(values) -> list[int]:
    """Positions of the device arrays among a call's flat arguments."""
    return [i for i, v in enumerate(values) if type(v) not in _HOST and is_device_array(v)]


# ---- the outer optimizers' updates on device arrays (metacc.runtime.optim) ----
# numba.cuda is imported on the first device update only (an optional heavy dependency);
# the kernels mirror optim.py's NumPy expressions in the parameter's dtype.

_KERNELS: dict = {}
_THREADS = 128


cuda = None      # numba.cuda once a device update runs; a module global, as the simulator needs


def _cuda():
    global cuda
    if cuda is None:
        from numba import cuda
    if not _KERNELS:
        _build()
    return cuda


def _build() -> None:
    @cuda.jit
    def sgd(p, b, g, lr, mu, new_p, new_b):
        i = cuda.grid(1)
        if i < p.size:
            nb = mu * b[i] + g[i]
            new_b[i] = nb
            new_p[i] = p[i] - lr * nb

    @cuda.jit
    def adam(p, m, v, g, lr, b1, one_b1, b2, one_b2, c1, c2, eps, new_p, new_m, new_v):
        i = cuda.grid(1)
        if i < p.size:
            nm = b1 * m[i] + one_b1 * g[i]
            nv = b2 * v[i] + one_b2 * (g[i] * g[i])
            new_m[i] = nm
            new_v[i] = nv
            new_p[i] = p[i] - lr * (nm / c1) / (math.sqrt(nv / c2) + eps)

    @cuda.jit
    def finite(x, flag):
        i = cuda.grid(1)
        if i < x.size and not math.isfinite(x[i]):
            flag[0] = 0          # every writer writes the same value: no race on the result

    _KERNELS.update(sgd=sgd, adam=adam, finite=finite)


def _flat(cuda, x):
    if type(x).__name__ not in ("DeviceNDArray", "MappedNDArray", "FakeCUDAArray"):
        x = cuda.as_cuda_array(x)        # CuPy, PyTorch: a numba view of the same memory
    return x.reshape(-1) if len(x.shape) != 1 else x


def _launch(name: str, n: int):
    return _KERNELS[name][max(1, (n + _THREADS - 1) // _THREADS), _THREADS]


def zeros_like(x):
    cuda = _cuda()
    v = DeviceView(x)
    return cuda.to_device(np.zeros(v.shape, v.dtype))


def all_finite(x) -> bool:
    """Checked on the device: one flag comes back, not the array."""
    cuda = _cuda()
    flat = _flat(cuda, x)
    flag = cuda.to_device(np.ones(1, np.int32))
    _launch("finite", flat.size)(flat, flag)
    return bool(flag.copy_to_host()[0])


def sgd_update(p, b, g, lr: float, mu: float):
    """(p - lr * (mu * b + g), mu * b + g) as new device arrays, in p's dtype."""
    cuda = _cuda()
    dt = DeviceView(p).dtype.type
    fp, fb, fg = (_flat(cuda, x) for x in (p, b, g))
    new_p, new_b = cuda.device_array_like(fp), cuda.device_array_like(fb)
    _launch("sgd", fp.size)(fp, fb, fg, dt(lr), dt(mu), new_p, new_b)
    shape = DeviceView(p).shape
    return new_p.reshape(shape), new_b.reshape(shape)


def adam_update(p, m, v, g, lr: float, b1: float, b2: float, c1: float, c2: float, eps: float):
    cuda = _cuda()
    dt = DeviceView(p).dtype.type
    fp, fm, fv, fg = (_flat(cuda, x) for x in (p, m, v, g))
    new = [cuda.device_array_like(fp) for _ in range(3)]
    _launch("adam", fp.size)(fp, fm, fv, fg, dt(lr), dt(b1), dt(1 - b1), dt(b2), dt(1 - b2), dt(c1), dt(c2),
                             dt(eps), *new)
    shape = DeviceView(p).shape
    return tuple(x.reshape(shape) for x in new)
