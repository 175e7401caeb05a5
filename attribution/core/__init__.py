"""The data path: options -> tokens -> quadrature -> Jacobian-vector products -> engine."""

from .engine import explain
from .execution import Cancelled, Progress, Run
from .options import ExplainOptions

__all__ = ["Cancelled", "ExplainOptions", "Progress", "Run", "explain"]
