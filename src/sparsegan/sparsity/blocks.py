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
dimension that the block does not divide are smaller: a block's score is its entries' mean scaled
to a full block (so a partial block competes on what its weights are worth, not on how many it
holds), and counts are met in entries: the blocks are taken best first until their entries come
nearest the layer's count (:func:`select_blocks`), so a layer gets the 1x1 distribution's count
to within one block whatever the block shape.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from sparsegan.sparsity.topk import count_true, global_topk_masks, split_like


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

    def sizes(self, shape: torch.Size | tuple[int, ...]) -> Tensor:
        """How many weights each block holds (int64, the block grid's shape): R*C, less at the edges."""
        r, c = self.matrix_shape(shape)
        gr, gc = self.grid(shape)
        rows = torch.full((gr,), self.rows, dtype=torch.long)
        cols = torch.full((gc,), self.cols, dtype=torch.long)
        rows[-1], cols[-1] = r - (gr - 1) * self.rows, c - (gc - 1) * self.cols
        return rows[:, None] * cols[None, :]

    def pool(self, scores: Tensor) -> Tensor:
        """Each block's score (float32, the block grid's shape): the sum of its entries' scores, an
        edge block's scaled by R*C / its size, i.e. the mean of its entries times R*C. A full block's
        score is its plain sum; a partial one is not penalised for holding fewer weights."""
        if self.unstructured:
            return self.matrix(scores.detach()).float()
        pooled = self._padded(scores.detach().float(), 0.0).sum(dim=(1, 3))
        sizes = self.sizes(scores.shape).to(pooled.device)
        full = self.rows * self.cols
        if bool((sizes < full).any()):
            pooled = torch.where(sizes < full, pooled * (full / sizes.float()), pooled)
        return pooled

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



def select_blocks(scores: Mapping[str, Tensor], sizes: Mapping[str, Tensor], k: int) -> dict[str, Tensor]:
    """Block masks holding about ``k`` weights: blocks taken in descending score (ties to the lower
    index, over the layers in order) until their sizes add up nearest to ``k`` (ties: fewer). One
    layer's dict is a per-layer choice; several layers ranked together is a global one.

    Blocks whose score is -inf are never taken (the caller's way to exclude them). Where every
    candidate block holds the same number of weights this is top-k of ``round(k / size)`` blocks
    (the rule before edge blocks were counted), by the same selection."""
    names = list(scores)
    flat = torch.cat([scores[n].reshape(-1).float() for n in names])
    size = torch.cat([sizes[n].reshape(-1).to(flat.device) for n in names])
    eligible = flat > float("-inf")
    n_eligible = count_true(eligible)
    eligible_sizes = size[eligible]
    if eligible_sizes.numel() == 0 or k <= 0:
        return {n: torch.zeros_like(scores[n], dtype=torch.bool) for n in names}
    lo, hi = int(eligible_sizes.min()), int(eligible_sizes.max())
    if lo == hi:
        return global_topk_masks(scores, min(n_eligible, round(k / lo)))
    order = torch.sort(flat, descending=True, stable=True).indices[:n_eligible]
    reached = torch.cat([torch.zeros(1, dtype=torch.long, device=flat.device), torch.cumsum(size[order], 0)])
    take = int(torch.argmin((reached - k).abs()))  # argmin returns the first: the fewer blocks on a tie
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[order[:take]] = True
    return split_like(keep, scores)
