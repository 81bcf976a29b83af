"""Training methods by name. Importing this package registers every method."""

from sparsegan.methods import adapt, dense, early_bird, gmp, imp, pf, prune_at_init, stu  # noqa: F401  (registration)
from sparsegan.methods.base import METHODS, NETS, Method, MethodContext, TopologyEvent

__all__ = ["METHODS", "NETS", "Method", "MethodContext", "TopologyEvent"]
