"""Every `sparsegan` command the README shows parses and validates as written (pasted, it must work)."""

import re
import shlex
from pathlib import Path

import pytest

from sparsegan.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[list[str]]:
    """argv of every `sparsegan ...` (or `... -m sparsegan ...`) line of the README's bash blocks."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                tokens = shlex.split(part, comments=True)
                if tokens[:1] == ["sparsegan"]:
                    out.append(tokens[1:])
                elif "-m" in tokens and tokens[tokens.index("-m") + 1:][:1] == ["sparsegan"]:
                    out.append(tokens[tokens.index("-m") + 2:])
    return out


def test_the_readme_has_commands():
    commands = {argv[0] for argv in readme_commands()}
    assert {"train", "eval", "sweep", "report", "flops", "export", "bench"} <= commands


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda argv: " ".join(argv)[:70])
def test_readme_command_parses_and_validates(argv, monkeypatch):
    monkeypatch.chdir(README.parent)  # the commands name configs/ relative to the repository
    if "--help" in argv:
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)
        assert e.value.code == 0
        return
    args = build_parser().parse_args(argv)  # a bad flag or literal brackets fail here, in one line
    if args.command == "train":
        from dataclasses import fields

        from sparsegan.config import TrainConfig, build_config, load_yaml

        values = load_yaml(args.config) if args.config else {}
        values.update({k: v for k, v in vars(args).items() if k in {f.name for f in fields(TrainConfig)}})
        cfg = build_config(values)
        assert args.dry_run or cfg.out is not None, "a train command without --out fails when pasted"
    elif args.command == "sweep":
        from sparsegan.experiments.grid import load_grid, parse_overrides

        grid = load_grid(args.grid, parse_overrides(args.set))  # base and eval: keys, all validated
        assert args.out or grid.out
