"""Optional TensorBoard view of a run, mirrored from its run folder (``sparsegan train --tensorboard``).

The run folder stays the source of truth: the mirror tails metrics.jsonl and samples/*.png and
writes what is new to RUN/tensorboard/ as scalars (losses, densities, ITOP rates, metrics,
balance ratio) and images (sample grids). TensorBoard is not a dependency of sparsegan; it is
imported only here, only when asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparsegan.errors import UserError
from sparsegan.run_folder import RunFolder

# Record fields that are bookkeeping, not curves.
_SKIP = {"kind", "step", "net", "generator", "checkpoint", "num_samples", "split"}


def summary_writer_class():
    """torch's SummaryWriter; a UserError naming the fix when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: pip install tensorboard "
                        "(or pip install 'sparsegan[tensorboard]')") from None
    return SummaryWriter


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """TensorBoard tags of one metrics.jsonl record, e.g. topology/G/itop_rate, train/loss_d."""
    kind = str(record.get("kind", "other"))
    prefix = f"{kind}/{record['net']}" if "net" in record else kind
    return {f"{prefix}/{k}": float(v) for k, v in record.items()
            if k not in _SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardMirror:
    """Writes the new part of a run folder to RUN/tensorboard/ on every :meth:`sync`."""

    def __init__(self, run: str | Path):
        self.run = Path(run)
        self.folder = RunFolder(run)
        # The mirror is rebuilt from the run folder each time (a resumed run rewrites its
        # records after the checkpoint), so old event files would only show stale duplicates.
        for old in self.folder.tensorboard.glob("events.out.tfevents.*"):
            old.unlink()
        self.writer = summary_writer_class()(log_dir=str(self.folder.tensorboard))
        self._offset = 0
        self._images: set[str] = set()

    def sync(self) -> None:
        records, self._offset = self.folder.records_from(self._offset)  # a line still being written waits
        for rec in records:
            for tag, v in scalars(rec).items():
                self.writer.add_scalar(tag, v, int(rec.get("step", 0)))
        for step, png in self.folder.sample_steps():
            if png.name not in self._images:
                self._images.add(png.name)
                self._add_image(png, step)
        self.writer.flush()

    def _add_image(self, png: Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(png) as im:
            arr = np.asarray(im.convert("RGB"))
        self.writer.add_image("samples", arr, step, dataformats="HWC")

    def close(self) -> None:
        self.sync()
        self.writer.close()
