"""Read what efficiency needs from a run folder (config.json, metrics.jsonl, final/*.safetensors)
and rebuild its nets from the model registry, with plain json / safetensors only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Mapping

from safetensors.torch import load_file
from torch import Tensor, nn

from sparsegan.errors import UserError
from sparsegan.models import MODELS, ModelSpec, build_models

GENERATOR_FILES = {"ema": "generator_ema.safetensors", "raw": "generator.safetensors"}
# Candidates tried, in order, when a run's config does not name them (the data decides them).
CHANNELS = (1, 3)
NUM_CLASSES = (0, 10, 100, 1000)


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} not found") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None


def read_records(run: Path) -> list[dict[str, Any]]:
    """metrics.jsonl records; a torn last line is ignored."""
    path = Path(run) / "metrics.jsonl"
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def load_tensors(path: Path) -> dict[str, Tensor]:
    if not Path(path).exists():
        raise UserError(f"{path} not found (was the run completed?)")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types
        raise UserError(f"{path} is not a readable safetensors file ({e})") from None


def spec_from_config(config: Mapping[str, Any], channels: int, num_classes: int) -> ModelSpec:
    return ModelSpec(channels=channels, resolution=config.get("resolution"), num_classes=num_classes,
                     z_dim=int(config.get("z_dim", 128)), width=config.get("model_width"),
                     width_multiplier=float(config.get("width_multiplier", 1.0)))


def _shapes(sd: Mapping[str, Tensor]) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in sd.items()}


def rebuild(model: str, config: Mapping[str, Any],
            g_state: Mapping[str, Tensor]) -> tuple[nn.Module, nn.Module, ModelSpec]:
    """Build the nets of ``model`` whose generator state dict matches ``g_state`` exactly.

    The run's config names the dataset, not its channel count or classes; the candidates are tried
    until every generator tensor has the saved shape."""
    if model not in MODELS:
        MODELS.get(model)  # raises the UserError listing valid names
    want = _shapes(g_state)
    channels = [config["channels"]] if "channels" in config else CHANNELS
    classes = [config["num_classes"]] if "num_classes" in config else NUM_CLASSES
    for c, k in product(channels, classes):
        try:
            spec = spec_from_config(config, c, k)
            G, D = build_models(model, spec)
        except (UserError, ValueError, TypeError, RuntimeError):
            continue
        if _shapes(G.state_dict()) == want:
            return G, D, spec
    raise UserError(f"cannot rebuild a {model} generator with the saved tensor shapes "
                    f"(tried channels {list(channels)}, classes {list(classes)})")


@dataclass
class RunFiles:
    """The parts of a completed run folder efficiency reads."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    masks: dict[str, dict[str, Tensor]]  # {"G": {param: bool}, "D": {...}}

    @classmethod
    def open(cls, path: str | Path) -> "RunFiles":
        p = Path(path)
        if not p.is_dir():
            raise UserError(f"{p} is not a run folder")
        if not (p / "config.json").exists():
            raise UserError(f"{p} is not a run folder (no config.json)")
        config = read_json(p / "config.json")
        summary = read_json(p / "summary.json") if (p / "summary.json").exists() else {}
        flat = load_tensors(p / "final" / "masks.safetensors")
        masks: dict[str, dict[str, Tensor]] = {"G": {}, "D": {}}
        for key, m in flat.items():
            net, _, name = key.partition(".")
            masks.setdefault(net, {})[name] = m.bool()
        return cls(p, config, summary, masks)

    def generator_state(self, which: str = "ema") -> dict[str, Tensor]:
        if which not in GENERATOR_FILES:
            raise UserError(f"unknown generator {which!r}; valid: {', '.join(GENERATOR_FILES)}")
        return load_tensors(self.path / "final" / GENERATOR_FILES[which])

    def nets(self, which: str = "ema") -> tuple[nn.Module, nn.Module, ModelSpec]:
        """G (with the chosen final weights) and D (with its final weights), rebuilt."""
        g_state = self.generator_state(which)
        G, D, spec = rebuild(self.config["model"], self.config, g_state)
        G.load_state_dict(g_state)
        d_path = self.path / "final" / "discriminator.safetensors"
        if d_path.exists():
            D.load_state_dict(load_tensors(d_path))
        return G.eval(), D.eval(), spec

    def steps_done(self) -> int:
        """Steps trained by the weights in final/: an IMP run's last round may be shorter than its
        schedule (late rewinding trains steps - k), which its summary records as "round_steps"."""
        if "round_steps" in self.summary:
            return int(self.summary["round_steps"])
        if "step" in self.summary:
            return int(self.summary["step"])
        steps = [int(r.get("step", 0)) for r in read_records(self.path) if r.get("kind") == "train"]
        return max(steps, default=int(self.config.get("steps", 0)))


def masked(state: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A state dict with every inactive weight exactly 0 (the contract already holds; this makes it
    hold for exports of files edited by hand)."""
    return {k: (v * masks[k].to(v.dtype) if k in masks else v) for k, v in state.items()}


