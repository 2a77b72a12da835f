"""metacc: a compiler for meta-learning programs."""
__version__ = "0.1.0"

from metacc.errors import InternalError, MetaccError, api_boundary  # noqa: E402,F401
from metacc.diagnostics import ConvergenceWarning  # noqa: E402,F401


@api_boundary
def compile(path_or_source, dtype=None, cache_dir=None):  # noqa: A001
    """Compile a .meta program (path, text or Program) into a Module; see metacc.runtime.

    dtype: None (the precision the program declares), 'f32' / 'f64', or NumPy's
    spellings of them ('float32', np.float64, np.dtype('float64'))."""
    from metacc.runtime import compile as _compile
    return _compile(path_or_source, dtype=dtype, cache_dir=cache_dir)
