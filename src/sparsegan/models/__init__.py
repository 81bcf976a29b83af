"""Generators and discriminators by name. Importing this package registers every model."""

from sparsegan.models import autoencoder, biggan, cyclegan, dcgan, mlp, sngan, unet  # noqa: F401  (registration)
from sparsegan.models.base import (
    MODEL_KIND,
    MODELS,
    NATIVE_RESOLUTION,
    Discriminator,
    Generator,
    ModelSpec,
    build_models,
    model_nets,
    register_model,
)

__all__ = ["MODEL_KIND", "MODELS", "NATIVE_RESOLUTION", "Discriminator", "Generator", "ModelSpec", "build_models",
           "model_nets", "register_model"]
