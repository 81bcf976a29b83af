"""The C kernels compile without a warning at the build's own flags plus -Wall -Wextra (a
maybe-uninitialized warning is a read the compiler cannot prove is of written memory)."""

import platform
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("gcc") is None or platform.machine() not in ("x86_64", "AMD64"),
                    reason="the kernels are built with gcc on x86-64 only")
def test_kernels_compile_without_warnings(tmp_path):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    ext = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["ext-modules"][0]
    flags = (sysconfig.get_config_var("CFLAGS") or "").split() + ext["extra-compile-args"]
    for source in ext["sources"]:
        cmd = ["gcc", *flags, "-Wall", "-Wextra", "-fPIC", f"-I{sysconfig.get_paths()['include']}", "-c",
               str(ROOT / source), "-o", str(tmp_path / (Path(source).stem + ".o"))]
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0 and "warning" not in done.stderr, (source, done.stderr[-2000:])
