"""What counts as a device array: anything with `__cuda_array_interface__` (numba-cuda
device arrays, CuPy, PyTorch CUDA tensors), and the CUDA simulator's FakeCUDAArray,
which has no interface. Checked by duck type, so the runtime never imports numba.cuda."""
from __future__ import annotations

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


def device_leaves(values) -> list[int]:
    """Positions of the device arrays among a call's flat arguments."""
    return [i for i, v in enumerate(values) if is_device_array(v)]
