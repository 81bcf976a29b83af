"""A method is built from its own options: it reads no option outside the groups it declares, the
valid values live on the options' fields, and the public API loads nothing but the engine."""

import ast
import inspect
import subprocess
import sys
import textwrap
from dataclasses import fields

import pytest

from sparsegan.config import METHOD_GROUPS, TrainConfig, build_config, method_for
from sparsegan.methods import METHODS
from sparsegan.options import choices_of


def _opts_reads(cls) -> set[str]:
    """The option names read as ``self.opts.<name>`` (or through ``cfg = self.opts``) by the code a
    method really runs: each of its functions and properties as the MRO resolves it (an override
    replaces its base's code)."""
    names = set()
    for attr in dir(cls):
        owner = next((k for k in cls.__mro__ if attr in k.__dict__), None)
        if owner is None or not owner.__module__.startswith("sparsegan.methods"):
            continue
        obj = owner.__dict__[attr]
        func = obj.fget if isinstance(obj, property) else getattr(obj, "__func__", obj)
        if not inspect.isfunction(func):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        aliases = {n.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                   and isinstance(node.value, ast.Attribute) and node.value.attr == "opts"
                   for n in node.targets if isinstance(n, ast.Name)}  # cfg = self.opts
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                base = node.value
                if isinstance(base, ast.Attribute) and base.attr == "opts" or \
                        isinstance(base, ast.Name) and base.id in aliases:
                    names.add(node.attr)
    return names


@pytest.mark.parametrize("name", METHODS.names())
def test_no_method_reads_an_option_outside_its_declared_groups(name):
    cls = METHODS.get(name)
    declared = {f.name for f in fields(cls.options_type())}
    read = _opts_reads(cls)
    assert read or name in ("dense", "imp"), f"{name}: no option read found (the scan is broken)"
    assert read <= declared, f"{name} reads {sorted(read - declared)} outside its groups"


def test_a_method_built_from_the_cli_config_holds_exactly_its_groups():
    cfg = build_config({"method": "gmp", "sparsity_g": 0.8, "gmp_start": 0.2, "steps": 100})
    method = method_for(cfg)
    assert method.opts.gmp_start == 0.2 and method.targets == {"G": 0.8, "D": 0.5} and method.steps == 100
    with pytest.raises(AttributeError):
        method.opts.prune_fraction  # stu's option: not part of gmp's options object
    with pytest.raises(TypeError, match="built from a GradualMagnitudePruningOptions"):
        METHODS.get("gmp")({"G": 0.5}, 10, METHODS.get("stu").options_type()())


def test_choices_live_on_the_options_fields():
    # a choice field's valid values are its own (a tuple or a registry's names), not a key that
    # config.py resolves; the config reads them from the fields
    for group in METHOD_GROUPS:
        for f in fields(group):
            choices = f.metadata.get("choices")
            assert choices is None or not isinstance(choices, str), f"{group.__name__}.{f.name}"
    by_field = {f.name: choices_of(f) for f in fields(TrainConfig) if choices_of(f)}
    assert by_field["adapt_variant"] == ["relaxed", "strict"] and "erk" in by_field["distribution"]
    assert by_field["regrown_state"] == ["fresh", "zero", "keep"] and "stu" in by_field["method"]


def test_the_api_loads_the_engine_only():
    # `import sparsegan` plus a SparseTraining on one classifier: no data, model, metric, loss, config,
    # training or run-folder module is loaded
    code = textwrap.dedent("""
        import sys, torch
        from torch import nn
        import sparsegan
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        sparsegan.SparseTraining({"net": net}, {"net": torch.optim.SGD(net.parameters(), lr=0.1)}, "stu",
                                 sparsity={"net": 0.5}, steps=10)
        print(" ".join(sorted(m for m in sys.modules if m.startswith("sparsegan"))))
    """)
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    allowed = ("sparsegan", "sparsegan.engine", "sparsegan.errors", "sparsegan.options", "sparsegan.registry",
               "sparsegan.random_streams", "sparsegan.files")  # files: the plan cache's folder and atomic writes
    engine = ("sparsegan.methods", "sparsegan.sparsity", "sparsegan.sparse_compute", "sparsegan.kernels")
    stray = [m for m in loaded if m not in allowed and not m.startswith(engine)]
    assert not stray, stray
    assert len(loaded) <= 42, loaded
