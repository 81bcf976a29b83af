"""The SLURM batch script the README points to: valid bash, and the sparsegan command it launches
parses and names a recipe that exists (a cluster user submits it as written)."""

import re
import shlex
import subprocess
from pathlib import Path

from sparsegan.cli import build_parser
from sparsegan.config import build_config, inapplicable, load_yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "slurm" / "train.sbatch"


def test_script_is_valid_bash_and_its_command_parses(monkeypatch):
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    text = SCRIPT.read_text()
    defaults = dict(re.findall(r"^(\w+)=\$\{\w+:-([^}]+)\}$", text, re.M))
    assert {"CONFIG", "DATA", "OUT"} <= set(defaults)
    launch = text.split("srun", 1)[1].replace("\\\n", " ")
    argv = shlex.split(launch.split("-m sparsegan", 1)[1].split("\n")[0])
    argv = [defaults.get(a[1:], a) if a.startswith("$") else a for a in argv]
    monkeypatch.chdir(ROOT)
    args = build_parser().parse_args(argv)
    assert args.command == "train" and args.resume == "auto"
    values = load_yaml(args.config)
    assert inapplicable(build_config(values), values) == {}
    assert "--nnodes" in launch and "--rdzv_backend c10d" in launch and "--max-restarts" in launch
