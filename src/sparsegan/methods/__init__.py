"""Training methods by name. Importing this package registers every method."""

from sparsegan.methods import dense, stu  # noqa: F401  (registration)
from sparsegan.methods.base import METHODS, NETS, Method, TopologyEvent

__all__ = ["METHODS", "NETS", "Method", "TopologyEvent"]
