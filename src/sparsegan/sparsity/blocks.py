"""Block masks: weights kept or pruned in r x c blocks instead of one by one.

Unstructured masks cannot be run faster than a CSR product allows; a mask made of small blocks
(1 x 4: four neighbouring inputs of one output) lets a kernel load a block's weights and inputs
together. The engine decides every mask in block units when a granularity is set: scores are
summed over each block, the top-k runs over blocks, and the block mask is expanded to the weight.

Blocks tile each weight's out x in matrix view: (out, in) for a Linear layer, (out, in k k) for a
conv, and (out, in k k) for a transposed conv too, whose weight is stored (in, out, k, k): its
output axis is 1 (``out_axis``). So an R x C block always spans R outputs, and R x 1 blocks are R
output rows that share every input, in every layer kind: the shape the runtime's blocked kernel
runs with one load of the input per R multiply-adds (sparsegan.inference). Edge blocks of a
dimension that the block does not divide are smaller.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Blocks:
    rows: int = 1
    cols: int = 1
    out_axis: int = 0  # the weight's output axis: 1 for transposed convs (in, out, *kernel)

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"block sides must be positive, got {self.rows}x{self.cols}")

    @classmethod
    def parse(cls, text: str) -> "Blocks":
        """``"RxC"`` (e.g. ``"1x4"``)."""
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
        if not m:
            raise ValueError(f"a block is written RxC (e.g. 1x4), got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.rows}x{self.cols}"

    @property
    def unstructured(self) -> bool:
        return self.rows == self.cols == 1

    def along(self, out_axis: int) -> "Blocks":
        """The same blocks for a weight whose output axis is ``out_axis``."""
        return self if out_axis == self.out_axis else Blocks(self.rows, self.cols, out_axis)

    def _swapped(self, t: Tensor) -> bool:
        # 1x1 blocks are the same whichever way the matrix is viewed: the weight's own layout
        return self.out_axis == 1 and t.dim() > 1 and not self.unstructured

    def matrix(self, t: Tensor) -> Tensor:
        """The weight's out x in matrix view (a copy for a transposed conv's weight)."""
        if t.dim() < 2:
            return t.reshape(1, -1)
        if self._swapped(t):
            t = t.transpose(0, 1)
        return t.reshape(t.shape[0], -1)

    def matrix_shape(self, shape: torch.Size | tuple[int, ...]) -> tuple[int, int]:
        if len(shape) < 2:
            return 1, int(shape[0]) if shape else 1
        out = int(shape[self.out_axis if not self.unstructured else 0])
        return out, math.prod(int(d) for d in shape) // max(out, 1)

    def grid(self, shape: torch.Size | tuple[int, ...]) -> tuple[int, int]:
        """Blocks along each side of a weight's matrix view."""
        r, c = self.matrix_shape(shape)
        return -(-r // self.rows), -(-c // self.cols)

    def _padded(self, t: Tensor, value: float) -> Tensor:
        m = self.matrix(t)
        gr, gc = self.grid(t.shape)
        pad_r, pad_c = gr * self.rows - m.shape[0], gc * self.cols - m.shape[1]
        if pad_r or pad_c:
            m = F.pad(m, (0, pad_c, 0, pad_r), value=value)
        return m.reshape(gr, self.rows, gc, self.cols)

    def pool(self, scores: Tensor) -> Tensor:
        """Each block's score: the sum of its entries' scores (float32, the block grid's shape)."""
        if self.unstructured:
            return self.matrix(scores.detach()).float()
        return self._padded(scores.detach().float(), 0.0).sum(dim=(1, 3))

    def pool_mask(self, mask: Tensor) -> Tensor:
        """Which blocks are active (any entry; for a block mask any is all)."""
        if self.unstructured:
            return self.matrix(mask)
        return self._padded(mask.to(torch.uint8), 0).amax(dim=(1, 3)).bool()

    def expand(self, block_mask: Tensor, like: Tensor) -> Tensor:
        """The weight-shaped bool mask of a block mask."""
        if self.unstructured:
            return block_mask.reshape(like.shape)
        m = block_mask.repeat_interleave(self.rows, 0).repeat_interleave(self.cols, 1)
        rows, cols = self.matrix_shape(like.shape)
        m = m[:rows, :cols]
        if self._swapped(like):
            swapped = (like.shape[1], like.shape[0], *like.shape[2:])
            return m.reshape(swapped).transpose(0, 1).contiguous()
        return m.reshape(like.shape)

    def is_blocked(self, mask: Tensor) -> bool:
        return self.unstructured or bool(torch.equal(self.expand(self.pool_mask(mask), mask), mask.bool()))

    def block_counts(self, counts: Mapping[str, int], shapes: Mapping[str, torch.Size]) -> dict[str, int]:
        """Active entries per layer -> active blocks per layer (the nearest whole number of full
        blocks, at most the layer's)."""
        out = {}
        for n, k in counts.items():
            gr, gc = self.grid(shapes[n])
            out[n] = min(gr * gc, round(k / (self.rows * self.cols)))
        return out
