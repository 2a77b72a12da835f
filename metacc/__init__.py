"""metacc: a compiler for meta-learning programs."""
__version__ = "0.1.0"

from metacc.errors import InternalError, MetaccError  # noqa: E402,F401
