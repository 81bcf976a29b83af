"""sparsegan in other libraries' training loops.

Each integration is its own module, imported on its own, so that the package never needs the
library it integrates with: ``sparsegan.integrations.lightning`` needs the ``lightning`` extra
(``pip install "sparsegan[lightning]"``). Hugging Face Accelerate needs no integration (its loop is
the user's own): ``examples/accelerate_gan.py`` shows the few lines.
"""
