"""The run folder: every path and file name in it is spelt here and nowhere else (DESIGN.md, "Run
folder"). One writer (:class:`RunDir`), one reader (:class:`RunFolder`), laid out by :class:`RunLayout`.

    RUN/config.json                     the resolved config + the data's "channels", "num_classes"
    RUN/metrics.jsonl                   one JSON record per line, each with "kind" and "step"
    RUN/summary.json                    status, step, params, density, itop_rate, flops, metrics, ...
    RUN/samples/step-NNNNNNNN.png       sample grids
    RUN/checkpoints/state-NNNNNNNN.pt   full training states (sparsegan.training.state)
    RUN/final/<file>.safetensors        FINAL_FILES: the generator (raw, EMA, best EMA), D, the masks
    RUN/eval/<metric>@<protocol>.json   `sparsegan eval`'s results (sparsegan.protocols)
    RUN/tensorboard/, RUN/export/       the TensorBoard mirror; `sparsegan export`'s default output

An IMP run or control (sparsegan.launch.rounds) adds:
    RUN/rounds/round-KK/                round K, itself a run folder
    RUN/tickets/round-KK/final/         ticket K: masks + the weights round K starts from (FINAL_FILES names)
    RUN/rewind/{init,rewind}-{generator,discriminator}.safetensors   both nets at step 0 / the rewind step
    RUN/rewind/rewind-position.json     the data order and noise state at the rewind step
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from sparsegan.errors import UserError
from sparsegan.files import atomic_write_bytes, save_safetensors

CONFIG, METRICS, SUMMARY = "config.json", "metrics.jsonl", "summary.json"
SAMPLES, CHECKPOINTS, FINAL, EVAL, ROUNDS, TICKETS = "samples", "checkpoints", "final", "eval", "rounds", "tickets"
REWIND, TENSORBOARD, EXPORT = "rewind", "tensorboard", "export"
REWIND_POSITION = "rewind-position.json"
# final/ files by role; a net's weights by net name; the generator files by which weights they hold.
FINAL_FILES = {"G": "generator.safetensors", "G_ema": "generator_ema.safetensors",
               "G_ema_best": "generator_ema_best.safetensors", "D": "discriminator.safetensors",
               "masks": "masks.safetensors"}
NET_FILES = {"G": FINAL_FILES["G"], "D": FINAL_FILES["D"]}
GENERATOR_FILES = {"ema": FINAL_FILES["G_ema"], "raw": FINAL_FILES["G"], "ema_best": FINAL_FILES["G_ema_best"]}
# Names inside the folders: samples/step-NNNNNNNN.png, checkpoints/state-NNNNNNNN.pt, rounds/round-KK.
SAMPLE_NAME = re.compile(r"step-(\d+)\.png$")
CHECKPOINT_NAME = re.compile(r"^state-(\d{8})\.pt$")


def sample_name(step: int) -> str:
    return f"step-{step:08d}.png"


def checkpoint_name(step: int) -> str:
    return f"state-{step:08d}.pt"


def round_name(k: int) -> str:
    return f"round-{k:02d}"


def in_final(file: str) -> str:
    """A final/ file as the run-relative text summary.json and eval files record ("final/<file>")."""
    return f"{FINAL}/{file}"


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def _parse_records(lines: list[str], kind: str | None = None) -> list[dict[str, Any]]:
    """The JSON objects among ``lines`` (of ``kind`` when given); a torn or foreign line is skipped."""
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and (kind is None or rec.get("kind") == kind):
            out.append(rec)
    return out


def read_records(run: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The records (JSON objects) of metrics.jsonl, optionally of one kind; a torn last line is ignored."""
    path = Path(run) / METRICS
    return _parse_records(path.read_text().splitlines(), kind) if path.exists() else []


def read_json_or_none(path: str | os.PathLike) -> Any:
    """A JSON file, or None when it is missing or unreadable (a run still being written)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def merge_summary(run: str | os.PathLike, fields: Mapping[str, Any],
                  defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``fields`` over summary.json's (atomically), keeping its other keys (``defaults`` where
    it has none): the loop's end, the evaluation during training and IMP's rounds each own some of
    them. Returns the new summary."""
    path = Path(run) / SUMMARY
    summary = {**(defaults or {}), **(read_json_or_none(path) or {}), **fields}
    write_json(path, summary)
    return summary


def load_json(path: str | os.PathLike) -> Any:
    """A JSON file of a run folder, or one clear line saying why it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path} cannot be read ({e.__class__.__name__})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A safetensors file of a run folder, or one clear line saying why it cannot be read."""
    if not Path(path).is_file():
        raise UserError(f"{path} not found (is the run finished? final/ is written at the end)")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types
        raise UserError(f"{path} is not a readable safetensors file ({e.__class__.__name__})") from None


def is_run_folder(path: str | os.PathLike) -> bool:
    """A config.json next to a metrics.jsonl or a summary.json (what reports and sweeps read)."""
    p = Path(path)
    return (p / CONFIG).is_file() and ((p / METRICS).exists() or (p / SUMMARY).exists())


def find_run_folders(root: str | os.PathLike) -> list[Path]:
    """``root`` when it is a run folder, else every run folder below it, sorted by path."""
    root = Path(root)
    if is_run_folder(root):
        return [root]
    return sorted(p.parent for p in root.rglob(CONFIG) if is_run_folder(p.parent))


def _at(*parts: str) -> property:
    return property(lambda self: self.path.joinpath(*parts), doc=f"RUN/{'/'.join(parts)}")


class RunLayout:
    """Where each part of a run folder lies (the writer and the reader share it); nothing is read."""

    config_file, metrics_file, summary_file = _at(CONFIG), _at(METRICS), _at(SUMMARY)
    samples, checkpoints, final, eval_dir = _at(SAMPLES), _at(CHECKPOINTS), _at(FINAL), _at(EVAL)
    tensorboard, rounds, tickets, rewind = _at(TENSORBOARD), _at(ROUNDS), _at(TICKETS), _at(REWIND)
    rewind_position = _at(REWIND, REWIND_POSITION)

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def final_file(self, role: str) -> Path:
        """final/'s file of ``role`` (FINAL_FILES: G, G_ema, G_ema_best, D, masks)."""
        return self.final / FINAL_FILES[role]

    def generator_file(self, which: str = "ema") -> Path:
        """final/'s generator file of ``which`` weights (GENERATOR_FILES: ema, raw, ema_best)."""
        if which not in GENERATOR_FILES:
            raise UserError(f"unknown generator {which!r}; valid: {', '.join(GENERATOR_FILES)}")
        return self.final / GENERATOR_FILES[which]

    def eval_file(self, metric: str, suffix: str) -> Path:
        """eval/<metric><suffix>.json: one metric's result under one protocol (its suffix, e.g. '@1000')."""
        return self.eval_dir / f"{metric}{suffix}.json"

    def export_file(self, generator: str, fmt: str) -> Path:
        """export/generator_<which>.csr.safetensors (fmt "csr") or export/generator_<which>.safetensors."""
        return self.path / EXPORT / f"generator_{generator}{'.csr' if fmt == 'csr' else ''}.safetensors"

    # --- IMP (sparsegan.launch.rounds) -----------------------------------------------------
    def round_dir(self, k: int) -> Path:
        """rounds/round-KK: round ``k`` of an IMP run or control, a run folder of its own."""
        return self.rounds / round_name(k)

    def ticket_dir(self, k: int) -> Path:
        """tickets/round-KK: ticket ``k``, a folder whose final/ holds its masks and start weights."""
        return self.tickets / round_name(k)

    def rewind_file(self, prefix: str, net: str) -> Path:
        """rewind/<prefix>-<generator|discriminator>.safetensors; ``prefix``: init (step 0) or rewind."""
        return self.rewind / f"{prefix}-{NET_FILES[net]}"


def _holds_anything(p: Path) -> bool:
    """Whether a folder holds more than the empty samples/, checkpoints/, final/ that
    :meth:`RunDir.prepare` makes (a run stopped before its first file is as good as empty)."""
    return any(not (e.name in (SAMPLES, CHECKPOINTS, FINAL) and e.is_dir() and not any(e.iterdir()))
               for e in p.iterdir())


class RunDir(RunLayout):
    """The writer: a run folder being trained into."""

    @classmethod
    def check(cls, path: str | os.PathLike, *, resume: bool, overwrite: bool) -> None:
        """Refuse to write into a folder that belongs to another run unless told to (no changes)."""
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise UserError(f"--out {p} exists and is not a folder")
        if not (p.exists() and _holds_anything(p)):
            return
        if not ((p / CONFIG).exists() or (p / METRICS).exists()):
            # The user's own files: neither continued (a run would be written next to them) nor deleted.
            why = "nothing there to resume" if resume else "not deleting it" if overwrite else "not writing into it"
            raise UserError(f"--out {p} is not empty and holds no sparsegan run (no {CONFIG}), {why}; "
                            "give another --out (a new or empty folder)")
        if not (resume or overwrite):
            raise UserError(f"--out {p} holds another run; pass --resume auto to continue it or --overwrite to "
                            "replace it")

    @classmethod
    def prepare(cls, path: str | os.PathLike, *, resume: bool, overwrite: bool) -> "RunDir":
        """Check the folder, then (with ``overwrite``) replace it. Call this only once everything
        else is validated, so that a bad option never costs an existing run."""
        cls.check(path, resume=resume, overwrite=overwrite)
        p = Path(path)
        if overwrite and p.exists() and not resume:
            shutil.rmtree(p)
        for d in (p, p / SAMPLES, p / CHECKPOINTS, p / FINAL):
            d.mkdir(parents=True, exist_ok=True)
        return cls(p)

    # --- records -----------------------------------------------------------------------
    def log(self, record: Mapping[str, Any]) -> None:
        """Append one record to metrics.jsonl (the loop's, an IMP round's, `sparsegan eval`'s)."""
        line = json.dumps(dict(record), default=_json_default)
        with open(self.metrics_file, "a") as f:
            f.write(line + "\n")

    def truncate_records_after(self, step: int) -> None:
        """On resume, drop records written after the checkpoint (they will be written again)."""
        path = self.metrics_file
        if not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and int(rec.get("step", 0)) <= step:
                keep.append(line)
        atomic_write_bytes(path, ("\n".join(keep) + ("\n" if keep else "")).encode())

    def write_config(self, config: Mapping[str, Any]) -> None:
        write_json(self.config_file, config)

    def read_config(self) -> dict[str, Any]:
        return read_json(self.config_file)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        write_json(self.summary_file, summary)

    def merge_summary(self, fields: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return merge_summary(self.path, fields, defaults)

    # --- artefacts ---------------------------------------------------------------------
    def save_grid(self, images: torch.Tensor, nrow: int | None, name: str) -> Path:
        """samples/<name> (:func:`sample_name`): ``images`` (uint8) in rows of ``nrow`` (None: a square grid)."""
        path = self.samples / name
        buf = encode_png(image_grid(images, nrow))
        atomic_write_bytes(path, buf)
        return path

    def save_final(self, tensors: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """final/'s file of each role (FINAL_FILES), e.g. {"G": G.state_dict(), "masks": {...}}, in
        the order given; a key that is no role names the file itself (<key>.safetensors)."""
        for key, sd in tensors.items():
            save_safetensors(self.final / FINAL_FILES.get(key, f"{key}.safetensors"), sd)

    def write_rewind_position(self, state: Mapping[str, Any]) -> None:
        """rewind/rewind-position.json (an IMP run's data position at the rewind step), atomically."""
        atomic_write_bytes(self.rewind_position, json.dumps(dict(state)).encode())


class RunFolder(RunLayout):
    """The reader: a run folder as every tool sees it (config, summary, records, final files, the
    nets rebuilt from the config). ``RunFolder.open`` checks that it is one."""

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self._config: dict[str, Any] | None = None
        self._summary: dict[str, Any] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunFolder":
        p = Path(path)
        if not p.is_dir():
            raise UserError(f"{p} is not a folder")
        if not (p / CONFIG).is_file():
            raise UserError(f"{p} is not a sparsegan run folder (no {CONFIG})")
        return cls(p)

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = load_json(self.config_file)
        return self._config

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json ({} while the run has none yet)."""
        if self._summary is None:
            self._summary = load_json(self.summary_file) if self.summary_file.is_file() else {}
        return self._summary

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        return read_records(self.path, kind)

    def records_from(self, offset: int) -> tuple[list[dict[str, Any]], int]:
        """The records of metrics.jsonl's complete lines from byte ``offset`` on, and the offset after
        them (a line still being written waits for the next call): what a tail of the run reads."""
        if not self.metrics_file.exists():
            return [], offset
        with open(self.metrics_file, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        return _parse_records(complete.decode().splitlines()), offset + len(complete)

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "incomplete"))

    def steps_done(self) -> int:
        """Steps trained by the weights in final/: an IMP run's last round may be shorter than its
        schedule (late rewinding trains steps - k), which its summary records as "round_steps"."""
        if "round_steps" in self.summary:
            return int(self.summary["round_steps"])
        if "step" in self.summary:
            return int(self.summary["step"])
        steps = [int(r.get("step", 0)) for r in self.records("train")]
        return max(steps, default=int(self.config.get("steps", 0)))

    # --- what the folders hold -----------------------------------------------------------
    def has_checkpoint(self) -> bool:
        """Whether checkpoints/ holds a training state to resume from."""
        return self.checkpoints.is_dir() and any(CHECKPOINT_NAME.match(p.name) for p in self.checkpoints.iterdir())

    def sample_files(self) -> list[Path]:
        """samples/*.png, sorted by name (the sample grids over training)."""
        return sorted(self.samples.glob("*.png"))

    def sample_steps(self) -> list[tuple[int, Path]]:
        """(step, path) of every samples/step-*.png grid, sorted by name."""
        matches = ((SAMPLE_NAME.search(png.name), png) for png in sorted(self.samples.glob("step-*.png")))
        return [(int(m.group(1)) if m else 0, png) for m, png in matches]

    def eval_files(self) -> list[Path]:
        """eval/<metric>@<protocol>.json, sorted by name (`sparsegan eval`'s results)."""
        return sorted(self.eval_dir.glob("*@*.json"))

    # --- final/ ------------------------------------------------------------------------
    def final_tensors(self, role: str) -> dict[str, torch.Tensor]:
        """final/'s file of ``role`` (FINAL_FILES: G, G_ema, G_ema_best, D, masks)."""
        return load_tensors(self.final_file(role))

    @functools.cached_property
    def masks(self) -> dict[str, dict[str, torch.Tensor]]:
        """{net: {param name: bool mask}} from final/masks.safetensors."""
        out: dict[str, dict[str, torch.Tensor]] = {"G": {}, "D": {}}
        for key, m in self.final_tensors("masks").items():
            net, _, name = key.partition(".")
            out.setdefault(net, {})[name] = m.bool()
        return out

    def generator_state(self, which: str = "ema") -> dict[str, torch.Tensor]:
        path = self.generator_file(which)
        if which == "ema_best" and not path.is_file():
            raise UserError(f"{path} not found (written only by runs trained with --eval-every)")
        return load_tensors(path)

    # --- the nets, rebuilt from the config -------------------------------------------------
    def data_shape(self, data_root: str | None = None) -> tuple[int, int]:
        """(image channels, classes) the nets were built for: recorded in config.json; for a run
        written before they were, read from its dataset."""
        c = self.config
        if "channels" in c and "num_classes" in c:
            return int(c["channels"]), int(c["num_classes"])
        from sparsegan.data import load_dataset

        data = load_dataset(c["dataset"], "train", data_root if data_root is not None else c.get("data_root"))
        return data.channels, data.num_classes

    def model_spec(self, data_root: str | None = None):
        from sparsegan.models import ModelSpec

        channels, num_classes = self.data_shape(data_root)
        c = self.config
        # "resolution": recorded for models built at the data's size (translation); others have their own.
        return ModelSpec(channels=channels, resolution=c.get("resolution"), num_classes=num_classes,
                         z_dim=int(c.get("z_dim", 128)),
                         width=c.get("model_width"), width_multiplier=float(c.get("width_multiplier", 1.0)),
                         sample_steps=c.get("sample_steps"), noise_schedule=c.get("noise_schedule", "linear"),
                         attention=bool(c.get("attention", False)))

    def build_nets(self, which: str = "ema", *, data_root: str | None = None, with_d: bool = True):
        """(G with the ``which`` final weights, D with its final weights (when ``with_d``), the spec),
        both in eval mode; D is None for a model trained as one net (diffusion)."""
        from sparsegan.models import build_models

        spec = self.model_spec(data_root)
        G, D = build_models(self.config["model"], spec)
        try:
            G.load_state_dict(self.generator_state(which))
        except RuntimeError as e:
            raise UserError(f"{self.path}: the saved generator does not fit a {self.config['model']} built from "
                            f"{CONFIG} ({str(e).splitlines()[0]})") from None
        if D is None:
            return G.eval(), None, spec
        if with_d and self.final_file("D").is_file():
            D.load_state_dict(self.final_tensors("D"))
        return G.eval(), D.eval(), spec


def image_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 [N, C, H, W] -> uint8 [H', W', C] grid with ``padding`` pixels of black between."""
    if images.dtype != torch.uint8:
        raise TypeError("image_grid expects uint8 images")
    n, c, h, w = images.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol = int(math.ceil(n / nrow))
    grid = np.zeros((padding + ncol * (h + padding), padding + nrow * (w + padding), c), dtype=np.uint8)
    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = arr[i]
    return grid


def encode_png(grid: np.ndarray) -> bytes:
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
