"""Kernel choices remembered across processes, so a second process does not calibrate again.

In ``mode="auto"`` each sparse layer of the inference runtime times its candidate kernels on the
first input of each shape and keeps the fastest (:mod:`sparsegan.inference.layer`): 0.5-2 s before
a generator's first output; training's planner (:mod:`sparsegan.sparse_compute.planner`) keeps its
dense-or-sparse choices in a file of its own (``training-plans.json``). The choice
depends on the layer (kind, weight shape, non-zeros, fused activation), the input shape, the
thread count, the kernels this installation has, and the machine, not on where the non-zeros
are; so it is stored under a key made of exactly those, in one JSON file
(``<cache>/inference-plans.json``, the cache folder of :func:`sparsegan.files.default_cache_dir`).

``SPARSEGAN_PLAN_CACHE`` overrides the file (a path), or turns the cache off (``off``). A stale
or foreign entry can only cost speed, never correctness: every candidate computes the layer's
exact function, and an entry naming a kernel this process lacks is ignored.
"""

from __future__ import annotations

import json
import os
import platform
import threading
from pathlib import Path
from typing import Any

import torch

from sparsegan.files import atomic_write_bytes, default_cache_dir

FORMAT = 1
OFF = ("off", "0", "false", "no", "none")


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key() -> str:
    """What makes timings of this process comparable with another's: CPU model and count, the
    software that runs the kernels (torch, sparsegan, and the build of its C kernels: a rebuilt
    library, e.g. one that shares out work to threads differently, is timed again)."""
    from sparsegan import __version__
    from sparsegan.kernels.library import build_id

    return f"{cpu_model()}|{os.cpu_count()}|torch {torch.__version__}|sparsegan {__version__}|kernels {build_id()}"


class PlanCache:
    """A JSON file of ``key -> kernel name``, read once and written through (atomically, merged
    with what other processes wrote meanwhile)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, str] | None = None
        self._lock = threading.Lock()
        self.machine = machine_key()

    @classmethod
    def default(cls, name: str = "inference-plans.json") -> "PlanCache":
        """The cache file ``name`` in the cache folder (training's plans have their own file), or
        the file ``SPARSEGAN_PLAN_CACHE`` names (keys of both kinds never collide), or none."""
        env = os.environ.get("SPARSEGAN_PLAN_CACHE")
        if env is not None and env.strip().lower() in OFF:
            return cls(None)
        return cls(env or default_cache_dir() / name)

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def key(self, **parts: Any) -> str:
        return json.dumps({"machine": self.machine, **parts}, sort_keys=True, default=str)

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: calibrate again (and rewrite it)
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("plans"), dict):
            return {}
        return {k: v for k, v in data["plans"].items() if isinstance(v, str)}

    def get(self, key: str) -> str | None:
        if not self.enabled:
            return None
        with self._lock:
            if self._entries is None:
                self._entries = self._read()
            return self._entries.get(key)

    def put(self, key: str, choice: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            entries = {**self._read(), **(self._entries or {}), key: choice}
            self._entries = entries
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(self.path, json.dumps({"format": FORMAT, "plans": entries}, indent=0).encode())
            except OSError:
                pass  # a read-only cache folder: the choice is still used in this process
