"""The run folder's contract: what RunDir writes, RunFolder reads back, at the paths DESIGN.md names;
and no module but sparsegan.run_folder spells those paths."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import torch

import sparsegan
from sparsegan.run_folder import (
    RunDir,
    RunFolder,
    checkpoint_name,
    find_run_folders,
    in_final,
    is_run_folder,
    round_name,
    sample_name,
    write_json,
)


def test_written_by_run_dir_read_by_run_folder(tmp_path):
    path = tmp_path / "run"
    run = RunDir.prepare(path, resume=False, overwrite=False)
    for d in ("samples", "checkpoints", "final"):
        assert (path / d).is_dir()

    run.write_config({"method": "static", "model": "dcgan", "steps": 8, "seed": 3})
    run.log({"kind": "train", "step": 4, "loss_d": 1.5})
    run.log({"kind": "topology", "step": 4, "net": "G", "density": 0.25})
    run.log({"kind": "train", "step": 8, "loss_d": 0.5})
    run.log({"kind": "eval", "step": 8, "fid": 12.0, "generator": "ema"})
    # Summary fields merged by several owners: the defaults only where the file has no value.
    run.merge_summary({"step": 8, "metrics": {"final": {"fid": 12.0}}}, defaults={"metrics": {}, "params": {}})
    run.merge_summary({"status": "completed"}, defaults={"metrics": {"final": {}, "best": {}}})

    mask_g = torch.tensor([[True, False], [False, False]])
    mask_d = torch.tensor([True, True, False])
    run.save_final({"G": {"w": torch.full((2, 2), 2.0)}, "G_ema": {"w": torch.full((2, 2), 3.0)},
                    "D": {"v": torch.arange(3.0)}, "masks": {"G.w": mask_g, "D.v": mask_d}})
    grid = run.save_grid(torch.zeros(4, 1, 3, 3, dtype=torch.uint8), 2, sample_name(8))

    from sparsegan.training.state import save_checkpoint  # the checkpoints' writer

    ckpt = save_checkpoint(run.checkpoints, 6, {"x": torch.zeros(1)}, keep=2)

    # The paths, by hand.
    assert (path / "config.json").is_file() and (path / "summary.json").is_file()
    assert len((path / "metrics.jsonl").read_text().splitlines()) == 4
    assert grid == path / "samples" / "step-00000008.png" and grid.is_file()
    assert ckpt == path / "checkpoints" / "state-00000006.pt" and checkpoint_name(6) == ckpt.name
    assert sorted(p.name for p in (path / "final").iterdir()) == [
        "discriminator.safetensors", "generator.safetensors", "generator_ema.safetensors", "masks.safetensors"]
    assert in_final("generator_ema.safetensors") == "final/generator_ema.safetensors"

    rf = RunFolder.open(path)
    assert rf.config == {"method": "static", "model": "dcgan", "steps": 8, "seed": 3}
    assert [r["step"] for r in rf.records()] == [4, 4, 8, 8]
    assert rf.records("train") == [{"kind": "train", "step": 4, "loss_d": 1.5},
                                   {"kind": "train", "step": 8, "loss_d": 0.5}]
    assert rf.records("eval") == [{"kind": "eval", "step": 8, "fid": 12.0, "generator": "ema"}]
    assert rf.summary == {"metrics": {"final": {"fid": 12.0}}, "params": {}, "step": 8, "status": "completed"}
    assert rf.status == "completed" and rf.steps_done() == 8
    assert rf.masks["G"]["w"].tolist() == [[True, False], [False, False]]
    assert rf.masks["D"]["v"].tolist() == [True, True, False]
    assert rf.final_tensors("D")["v"].tolist() == [0.0, 1.0, 2.0]
    assert rf.generator_state("ema")["w"].tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert rf.generator_state("raw")["w"].tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert rf.generator_file("ema_best") == path / "final" / "generator_ema_best.safetensors"
    assert rf.has_checkpoint()
    assert rf.sample_files() == [grid] and rf.sample_steps() == [(8, grid)]

    # A tail of metrics.jsonl: complete lines only, from a byte offset.
    records, offset = rf.records_from(0)
    assert len(records) == 4 and offset == (path / "metrics.jsonl").stat().st_size
    with open(path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "st')  # a line still being written
    assert rf.records_from(offset) == ([], offset)

    # `sparsegan eval`'s files, the export's default, the TensorBoard mirror's folder.
    write_json(rf.eval_file("fid", "@1000"), {"fid": 12.0})
    assert rf.eval_files() == [path / "eval" / "fid@1000.json"]
    assert rf.export_file("ema", "csr") == path / "export" / "generator_ema.csr.safetensors"
    assert rf.export_file("raw", "safetensors") == path / "export" / "generator_raw.safetensors"
    assert rf.tensorboard == path / "tensorboard"

    # An IMP run's layout: rounds and tickets (run folders of their own), the rewind files.
    assert round_name(3) == "round-03"
    assert run.round_dir(0) == rf.round_dir(0) == path / "rounds" / "round-00"
    assert run.ticket_dir(12) == path / "tickets" / "round-12"
    assert rf.rewind_file("init", "G") == path / "rewind" / "init-generator.safetensors"
    assert rf.rewind_file("rewind", "D") == path / "rewind" / "rewind-discriminator.safetensors"
    ticket = RunDir(run.ticket_dir(1))
    ticket.save_final({"G": {"w": torch.ones(2, 2)}, "D": {"v": torch.ones(3)}, "masks": {"G.w": mask_g}})
    assert (path / "tickets" / "round-01" / "final" / "masks.safetensors").is_file()
    ticket_masks = RunFolder(rf.ticket_dir(1)).masks
    assert ticket_masks["G"]["w"].tolist() == mask_g.tolist() and ticket_masks["D"] == {}
    run.write_rewind_position({"step": 3, "noise_rng": "00ff"})
    assert (path / "rewind" / "rewind-position.json").read_text() == '{"step": 3, "noise_rng": "00ff"}'

    round0 = RunDir.prepare(run.round_dir(0), resume=False, overwrite=False)
    round0.write_config({"method": "dense", "steps": 8})
    round0.write_summary({"status": "completed", "step": 5})
    # An IMP run's final/ holds its last round's weights, which trained the round's own steps.
    run.merge_summary({"round_steps": 5})
    assert RunFolder(path).steps_done() == 5
    assert RunFolder(run.round_dir(0)).status == "completed"

    assert is_run_folder(path) and is_run_folder(path / "rounds" / "round-00")
    assert not is_run_folder(path / "tickets" / "round-01")  # a ticket has final/ only
    assert find_run_folders(tmp_path) == [path, path / "rounds" / "round-00"]
    assert find_run_folders(path) == [path]


def test_records_skip_torn_and_foreign_lines(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\n[1, 2]\nnot json\n{"kind": "tr')
    assert RunFolder(tmp_path).records() == [{"kind": "train", "step": 1}]
    run = RunDir(tmp_path)
    run.truncate_records_after(0)
    assert RunFolder(tmp_path).records() == []
    assert json.loads(json.dumps(RunFolder(tmp_path).summary)) == {}  # no summary.json yet: {}


# Names only sparsegan.run_folder may spell (its constants CONFIG, METRICS, SUMMARY).
RUN_FOLDER_FILES = ("config.json", "metrics.jsonl", "summary.json", "state-", "step-{")


def _code_strings(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal in code, f-string parts included; docstrings (and any
    other bare string statement) and comments are documentation, not paths, and are left out."""
    tree = ast.parse(source)
    docs = {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs]


def test_only_run_folder_spells_run_folder_files():
    root = Path(sparsegan.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "run_folder.py":
            continue
        for line, text in _code_strings(path.read_text()):
            found += [f"{rel}:{line}: {name}" for name in RUN_FOLDER_FILES if name in text]
    assert not found, "spell these through sparsegan.run_folder:\n" + "\n".join(found)


def test_the_scan_sees_code_strings_but_not_documentation():
    source = '"""config.json"""\n# summary.json\nx = f"{y}/metrics.jsonl"\n\ndef f():\n    """summary.json"""\n'
    assert [text for _, text in _code_strings(source)] == ["/metrics.jsonl"]
