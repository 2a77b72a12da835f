"""The CUDA target (numba-cuda, the optional extra `cuda`): kernels lowered from the
same simplified IR and buffer plan as the CPU back end; see source.py."""
