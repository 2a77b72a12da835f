"""metacc: a compiler for meta-learning programs."""
from metacc.version import __version__  # noqa: F401
from metacc.errors import InternalError, MetaccError, NonFiniteError, api_boundary  # noqa: E402,F401
from metacc.convergence import ConvergenceWarning  # noqa: E402,F401
from metacc.disconnected import DisconnectedWarning  # noqa: E402,F401


@api_boundary
def compile(path_or_source, dtype=None, cache_dir=None, check_finite=None, target="cpu"):  # noqa: A001
    """Compile a .meta program (path, text or Program) into a Module; see metacc.compiler and metacc.runtime.

    dtype: None (the precision the program declares), 'f32' / 'f64', or NumPy's
    spellings of them ('float32', np.float64, np.dtype('float64')).
    check_finite=True (or METACC_CHECK_FINITE=1 when it is None) makes every call
    check that its results are finite and name the equation that made a NaN or
    inf (metacc.NonFiniteError); see metacc.nonfinite.
    target: 'cpu' (Numba CPU kernels) or 'cuda' (numba.cuda kernels through the
    numba-cuda package, the extra `cuda`; NUMBA_ENABLE_CUDASIM=1 runs them on the
    CUDA simulator); see metacc.backend.cuda."""
    from metacc.compiler import compile as _compile   # numba and the runtime: on first use
    return _compile(path_or_source, dtype=dtype, cache_dir=cache_dir, check_finite=check_finite, target=target)
