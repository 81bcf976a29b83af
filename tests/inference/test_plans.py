"""Auto mode's kernel choices remembered across processes (sparsegan.kernels.plans)."""

import json
import subprocess
import sys

import torch

from sparsegan.inference.runtime import choices, sparsify
from sparsegan.kernels.plans import PlanCache
from sparsegan.models import ModelSpec, build_models
from sparsegan.sparsity import MaskSet, prunable_parameters


def _generator(seed: int = 0):
    torch.manual_seed(seed)
    G, _ = build_models("mlp", ModelSpec(width=16))
    MaskSet.random(prunable_parameters(G), 0.9, "erk", generator=torch.Generator().manual_seed(seed)).apply_()
    return G.eval()


def _first_call(G, cache):
    S = sparsify(G, "auto", plan_cache=cache)
    with torch.no_grad():
        out = S(torch.ones(2, G.z_dim))
    return S, out


def test_a_second_sparsify_takes_every_choice_from_the_cache(tmp_path):
    G = _generator()
    path = tmp_path / "plans.json"
    first, out1 = _first_call(G, PlanCache(path))
    c1 = choices(first)
    assert all(c["timings_ms"] and not c["from_plan_cache"] for c in c1.values())  # calibrated
    assert json.loads(path.read_text())["format"] == 1
    second, out2 = _first_call(G, PlanCache(path))  # a fresh cache object: what a new process reads
    c2 = choices(second)
    assert {n: c["choice"] for n, c in c2.items()} == {n: c["choice"] for n, c in c1.items()}
    assert all(c["from_plan_cache"] == list(c["choice"]) and not c["timings_ms"] for c in c2.values())
    torch.testing.assert_close(out1, out2)
    # Another sparsity pattern with the same non-zero counts shares the plans (the choice depends
    # on counts and shapes, not on where the non-zeros are).
    third, _ = _first_call(_generator(seed=1), PlanCache(path))
    assert all(c["from_plan_cache"] for c in choices(third).values())


def test_unreadable_or_foreign_entries_only_cost_a_calibration(tmp_path):
    path = tmp_path / "plans.json"
    path.write_text("{not json")
    S, _ = _first_call(_generator(), PlanCache(path))
    assert all(c["timings_ms"] for c in choices(S).values())
    plans = json.loads(path.read_text())["plans"]  # rewritten, valid
    assert plans
    path.write_text(json.dumps({"format": 1, "plans": {k: "no-such-kernel" for k in plans}}))
    S, _ = _first_call(_generator(), PlanCache(path))
    assert all(c["timings_ms"] and not c["from_plan_cache"] for c in choices(S).values())


def test_the_cache_can_be_turned_off_or_moved(tmp_path, monkeypatch):
    moved = tmp_path / "elsewhere.json"
    monkeypatch.setenv("SPARSEGAN_PLAN_CACHE", str(moved))
    _first_call(_generator(), True)
    assert moved.exists()
    S, _ = _first_call(_generator(), True)
    assert all(c["from_plan_cache"] for c in choices(S).values())  # read back from the moved file
    monkeypatch.setenv("SPARSEGAN_PLAN_CACHE", "off")
    assert not PlanCache.default().enabled
    written = moved.read_text()
    S, _ = _first_call(_generator(), True)
    assert all(c["timings_ms"] and not c["from_plan_cache"] for c in choices(S).values())  # not read
    assert moved.read_text() == written  # nor written


def test_a_second_process_does_not_calibrate(tmp_path):
    script = (
        "import json, torch\n"
        "from sparsegan.inference.runtime import choices, sparsify\n"
        "from sparsegan.models import ModelSpec, build_models\n"
        "torch.manual_seed(0)\n"
        "G, _ = build_models('mlp', ModelSpec(width=16))\n"
        "S = sparsify(G.eval(), 'auto')\n"
        "S(torch.ones(1, G.z_dim))\n"
        "print(json.dumps({n: bool(c['from_plan_cache']) for n, c in choices(S).items()}))\n"
    )
    env = {"SPARSEGAN_PLAN_CACHE": str(tmp_path / "plans.json"), "PATH": "/usr/bin:/bin"}
    runs = [json.loads(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert not any(runs[0].values()) and all(runs[1].values()) and runs[1]


def test_a_rebuilt_kernel_library_is_timed_again(tmp_path, monkeypatch):
    # the machine key names the C kernels' build (their file's hash): timings of another build, which may
    # share out work to threads differently, are not taken
    import importlib

    from sparsegan.kernels import plans

    lib_module = importlib.import_module("sparsegan.kernels.library")  # the module (the package exports its function)

    cache = tmp_path / "plans.json"
    _first_call(_generator(), PlanCache(cache))
    S, _ = _first_call(_generator(), PlanCache(cache))
    assert all(c["from_plan_cache"] for c in choices(S).values())
    assert f"kernels {lib_module.build_id()}" in plans.machine_key()
    monkeypatch.setattr(lib_module, "build_id", lambda: "0123456789ab")
    S, _ = _first_call(_generator(), PlanCache(cache))
    assert not any(c["from_plan_cache"] for c in choices(S).values())
