"""Generators and discriminators by name. Importing this package registers every model."""

from sparsegan.models import dcgan, mlp  # noqa: F401  (registration)
from sparsegan.models.base import (
    MODELS,
    NATIVE_RESOLUTION,
    Discriminator,
    Generator,
    ModelSpec,
    build_models,
    register_model,
)

__all__ = ["MODELS", "NATIVE_RESOLUTION", "Discriminator", "Generator", "ModelSpec", "build_models", "register_model"]
