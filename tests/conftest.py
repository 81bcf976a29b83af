import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

FASHION = Path("/usr/share/datasets/fashion-mnist")


def has_fashion_mnist() -> bool:
    return (FASHION / "train-images-idx3-ubyte.gz").exists()


needs_fashion = pytest.mark.skipif(not has_fashion_mnist(),
                                   reason="Fashion-MNIST (dataset-fashion-mnist) not installed")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    # Never touch the user's cache (downloads, reference statistics, kernel plans) from tests:
    # session-wide, so that module-scoped fixtures' runs are isolated too.
    saved = os.environ.get("SPARSEGAN_CACHE")
    os.environ["SPARSEGAN_CACHE"] = str(tmp_path_factory.getbasetemp() / "cache")
    yield
    if saved is None:
        os.environ.pop("SPARSEGAN_CACHE", None)
    else:
        os.environ["SPARSEGAN_CACHE"] = saved


@pytest.fixture(scope="module")
def tiny_run(request):
    """Train a tiny run through the real CLI entry point: ``tiny_run(out, *flags, data=None) -> int``,
    the exit status of ``sparsegan train --out OUT --no-progress [--data-root DATA] *TINY_FLAGS *flags``.

    A test module may set its own defaults in a module-level ``TINY_FLAGS`` list; the caller's flags
    come after them, so a flag given in both keeps the caller's value (argparse: the last one wins).
    Module-scoped so that module-scoped fixtures (a shared finished run) can use it too."""
    from sparsegan.cli import main

    defaults = list(getattr(request.module, "TINY_FLAGS", ()))

    def run(out, *flags, data=None) -> int:
        root = [] if data is None else ["--data-root", str(data)]
        return main(["train", "--out", str(out), "--no-progress", *root, *defaults, *flags])

    return run
