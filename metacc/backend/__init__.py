"""The Numba CPU backend: IR functions to readable `@numba.njit` source.

    lower_source(fn)                       task kernel + `NAME_call` entry
    lower_batched(fn, batched, reduce)     + `NAME_batched`: a task batch in one call, on all threads
    load(source, directory)                write the source to a file and import it
"""
from metacc.backend.loader import load  # noqa: F401
from metacc.backend.generate import Lowered, lower, lower_batched, lower_source  # noqa: F401
