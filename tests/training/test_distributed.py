"""Two processes with gloo on CPU (torchrun in a subprocess) against one process on the same
global batch and seed: every topology record carries two equal checksums, and the masks agree."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.training import read_records


def _common(data):
    return ["--dataset", "mnist", "--data-root", str(data), "--model", "mlp", "--model-width", "16",
            "--method", "stu", "--sparsity-g", "0.8", "--sparsity-d", "0.5", "--steps", "8",
            "--update-interval", "2", "--batch-size", "32", "--n-dis", "1", "--sync-bn", "--seed", "3",
            "--log-every", "4", "--checkpoint-every", "4", "--no-progress"]


def test_two_process_gloo_run_matches_one_process(tmp_path):
    data = write_fake_mnist(tmp_path / "data", n_train=256, n_test=8)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sparsegan", "train", *_common(data), "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main(["train", *_common(data), "--out", str(tmp_path / "one")]) == 0

    ddp, one = tmp_path / "ddp", tmp_path / "one"
    topo = read_records(ddp, "topology")
    assert [r["step"] for r in topo if r["net"] == "G"] == [2, 4, 6]
    for r in topo:
        assert len(r["mask_checksums"]) == 2 and r["mask_checksums"][0] == r["mask_checksums"][1]
    assert all(len(r["mask_checksums"]) == 1 for r in read_records(one, "topology"))
    # Only rank 0 wrote: one set of records, one config.
    assert len(read_records(ddp, "train")) == len(read_records(one, "train")) == 2
    assert json.loads((ddp / "summary.json").read_text())["status"] == "completed"

    a, b = load_file(ddp / "final" / "masks.safetensors"), load_file(one / "final" / "masks.safetensors")
    assert a.keys() == b.keys()
    same = sum(int((a[k] == b[k]).sum()) for k in a)
    total = sum(a[k].numel() for k in a)
    assert same / total >= 0.99, same / total
    # The topology really moved, in both runs, by the same amounts.
    g_one = [r for r in read_records(one, "topology") if r["net"] == "G"]
    assert [r["pruned"] for r in topo if r["net"] == "G"] == [r["pruned"] for r in g_one]
    assert all(r["pruned"] > 0 for r in g_one)
    # Weights agree closely too (float reduction order is the only difference).
    wa, wb = load_file(ddp / "final" / "generator.safetensors"), load_file(one / "final" / "generator.safetensors")
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-3, rtol=1e-3), k


def test_batch_must_divide_among_processes(monkeypatch):
    from sparsegan.errors import UserError
    from sparsegan.training.distributed import DistContext

    with pytest.raises(UserError, match="not divisible"):
        DistContext(rank=0, world_size=3).check_batch(64)
    ctx = DistContext(rank=1, world_size=2)
    assert ctx.shard(torch.arange(6)).tolist() == [1, 3, 5]


def test_sync_batchnorm_single_process_is_batchnorm():
    from sparsegan.training.distributed import convert_sync_batchnorm

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    weight = net[1].weight
    ref = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    ref.load_state_dict(net.state_dict())
    net = convert_sync_batchnorm(net)
    assert net[1].weight is weight  # the same parameter objects: masks/optimizers stay valid
    x = torch.randn(8, 4)
    assert torch.allclose(net(x), ref(x)) and torch.allclose(net[1].running_var, ref[1].running_var)
    assert set(net.state_dict()) == set(ref.state_dict())


def test_torchrun_speaks_through_rank_zero_only(tmp_path):
    # A device this machine lacks: one line from rank 0 (torchrun then adds its own failure summary);
    # a run: one "run folder" line and no progress bar from the other ranks.
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "sparsegan",
            "train", "--dataset", "mnist", "--data-root", str(data), "--model", "mlp", "--model-width", "8",
            "--batch-size", "8", "--steps", "2"]
    if not torch.cuda.is_available():
        proc = subprocess.run([*base, "--device", "cuda", "--out", str(tmp_path / "cuda")], env=env,
                              capture_output=True, text=True, timeout=600)
        ours = [ln for ln in proc.stderr.splitlines() if ln.startswith("sparsegan:")]
        assert proc.returncode != 0 and len(ours) == 1 and "no usable CUDA device" in ours[0], proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr.split("ChildFailedError")[0].split(ours[0])[0]
    proc = subprocess.run([*base, "--device", "auto", "--out", str(tmp_path / "run")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("run folder:") == 1
    assert proc.stderr.count("| 0/2 [") == 1  # one progress bar (rank 0's), not one per process


def test_a_rank_other_than_zero_waits_then_says_its_own_error(monkeypatch, capsys):
    # rank 0 says a user error at once; rank 1 first waits the grace period (torchrun stops it there when rank 0
    # failed alike) and then says it, naming its rank, so an error of rank 1 alone still reaches the user
    from sparsegan import cli

    waited, handlers = [], []
    monkeypatch.setattr(cli.time, "sleep", waited.append)
    monkeypatch.setattr(cli.signal, "signal", lambda sig, handler: handlers.append((sig, handler)))
    monkeypatch.setenv("RANK", "0")
    cli.say_error("no usable CUDA device")
    assert capsys.readouterr().err == "sparsegan: error: no usable CUDA device\n" and waited == []
    monkeypatch.setenv("RANK", "1")
    assert main(["train", "--device", "cuda:7", "--steps", "0"]) != 0
    assert waited == [cli.RANK_GRACE_S] and handlers == [(cli.signal.SIGTERM, cli.signal.SIG_DFL)]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparsegan:") and lines[0].endswith(" (rank 1)")


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
def test_a_lost_rank_resumes_from_the_last_checkpoint_bitwise(tmp_path):
    # SIGKILL of one of two gloo ranks after a checkpoint: the launch fails; relaunched with
    # --resume auto, the group continues from the newest valid checkpoint (written by rank 0, read by
    # both), and the final files equal an uninterrupted two-process run's. (torchrun --max-restarts
    # relaunches the same command, which then resumes by itself.)
    import signal
    import time

    data = write_fake_mnist(tmp_path / "data", n_train=256, n_test=8)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    args = ["--dataset", "mnist", "--data-root", str(data), "--model", "mlp", "--model-width", "16",
            "--method", "stu", "--sparsity-g", "0.8", "--steps", "60", "--update-interval", "7",
            "--batch-size", "32", "--checkpoint-every", "10", "--log-every", "5", "--no-progress"]

    def launch(out, *extra):
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "sparsegan", "train", *args, "--out", str(out), *extra]

    straight = subprocess.run(launch(tmp_path / "straight"), env=env, capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]
    run = tmp_path / "killed"
    proc = subprocess.Popen(launch(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((run / "checkpoints").glob("state-00000020*.pt")):
        time.sleep(0.05)
    descendants, todo = [], [proc.pid]
    while todo:
        kids = _children(todo.pop())
        descendants += kids
        todo += kids
    workers = [p for p in descendants if "sparsegan" in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")
               and "torch.distributed.run" not in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")]
    assert workers, "no rank process found"
    os.kill(workers[-1], signal.SIGKILL)
    assert proc.wait(timeout=600) != 0  # the launch fails with the lost rank
    again = subprocess.run(launch(run, "--resume", "auto"), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = read_records(run, "resume")
    assert resumed and resumed[-1]["step"] >= 20
    assert again.stderr.count("sparsegan: resuming") == 1  # said by rank 0 alone
    for f in ("generator", "generator_ema", "discriminator", "masks"):
        a = load_file(tmp_path / "straight" / "final" / f"{f}.safetensors")
        b = load_file(run / "final" / f"{f}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f


DDP_METHODS = {
    "static": ["--method", "static", "--sparsity-g", "0.8", "--sparsity-d", "0.5"],
    "gmp": ["--method", "gmp", "--sparsity-g", "0.8", "--sparsity-d", "0.5", "--gmp-interval", "1"],
    "early_bird": ["--method", "early_bird", "--sparsity-g", "0.8", "--eb-interval", "1", "--eb-window", "2",
                   "--eb-threshold", "1.0"],
    "adapt": ["--method", "adapt", "--sparsity-g", "0.8", "--sparsity-d", "0.5", "--adapt-interval", "2",
              "--balance-every", "1"],
    "snip": ["--method", "snip", "--sparsity-g", "0.8", "--sparsity-d", "0.5"],
    "grasp": ["--method", "grasp", "--sparsity-g", "0.8", "--sparsity-d", "0.5"],
    "stu-grasp": ["--method", "stu", "--sparsity-g", "0.8", "--prune-criterion", "grasp"],
    "imp": ["--method", "imp", "--sparsity-g", "0.36", "--prune-nets", "G"],
    "vae": ["--model", "vae", "--method", "stu", "--sparsity-g", "0.8", "--sparsity-d", "0.5"],
    "ae": ["--model", "ae", "--method", "snip", "--sparsity-g", "0.8", "--sparsity-d", "0.5"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DDP_METHODS))
def test_every_method_keeps_identical_masks_on_every_rank(tmp_path, name):
    data = write_fake_mnist(tmp_path / "data", n_train=128, n_test=8)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    args = ["--dataset", "mnist", "--data-root", str(data), "--model", "dcgan", "--model-width", "4",
            "--batch-size", "16", "--steps", "6", "--update-interval", "2", "--log-every", "2", "--no-progress",
            "--allow-ignored",
            *DDP_METHODS[name]]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "sparsegan",
           "train", *args, "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [out, *sorted((out / "rounds").glob("round-*"))] if (out / "rounds").is_dir() else [out]
    topo = [r for run in runs for r in read_records(run, "topology")]
    assert topo
    assert all(len(r["mask_checksums"]) == 2 and len(set(r["mask_checksums"])) == 1 for r in topo), name


@pytest.mark.slow
def test_two_nodes_with_rendezvous_match_one_node(tmp_path):
    # Two torchrun launchers on this host stand in for two nodes (--nnodes 2, c10d rendezvous), one
    # process each: the same run as two processes on one node, bitwise (a sum of two gradients does
    # not depend on which rank holds which).
    import socket

    data = write_fake_mnist(tmp_path / "data", n_train=128, n_test=8)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    args = ["-m", "sparsegan", "train", "--dataset", "mnist", "--data-root", str(data), "--model", "mlp",
            "--model-width", "8", "--method", "stu", "--sparsity-g", "0.8", "--steps", "6", "--update-interval", "2",
            "--batch-size", "16", "--no-progress"]
    one = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          *args, "--out", str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
            "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "two-nodes",
            *args, "--out", str(tmp_path / "two")]
    procs = [subprocess.Popen(node, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in results]
    topo = read_records(tmp_path / "two", "topology")
    assert topo and all(len(set(r["mask_checksums"])) == 1 and len(r["mask_checksums"]) == 2 for r in topo)
    for f in ("generator", "discriminator", "masks"):
        a = load_file(tmp_path / "one" / "final" / f"{f}.safetensors")
        b = load_file(tmp_path / "two" / "final" / f"{f}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f


@pytest.mark.slow
def test_distributed_evaluation_equals_one_process(tmp_path):
    # sparsegan eval under torchrun: each rank generates and extracts every other batch, rank 0
    # gathers the features in one process's order: the same values as one process. Training with
    # --eval-every under torchrun evaluates the same way.
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    run = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "sparsegan"]
    proc = subprocess.run([*torchrun, "train", "--data-root", str(data), "--model", "dcgan",
                           "--model-width", "4", "--batch-size", "8", "--steps", "2", "--method", "static",
                           "--eval-every", "2", "--eval-metrics", "fid_domain", "--eval-num-samples", "50",
                           "--eval-batch-size", "8", "--no-progress", "--out", str(run)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["num_samples"] for r in read_records(run, "eval")] == [50]  # one record, from rank 0
    args = ["eval", str(run), "--metrics", "fid_domain,kid,pr", "--num-samples", "50", "--batch-size", "8",
            "--data-root", str(data), "--no-progress"]
    proc = subprocess.run([*torchrun, *args], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = {r: json.loads(p.read_text()) for r in ("fid_domain", "kid", "pr")
           for p in (run / "eval").glob(f"{r}@*.json")}
    for p in (run / "eval").glob("*.json"):
        p.unlink()
    assert main(args) == 0
    one = {r: json.loads(p.read_text()) for r in ("fid_domain", "kid", "pr")
           for p in (run / "eval").glob(f"{r}@*.json")}
    for name, keys in (("fid_domain", ["fid_domain"]), ("kid", ["kid", "kid_std"]), ("pr", ["precision", "recall"])):
        for k in keys:
            assert two[name][k] == pytest.approx(one[name][k], rel=1e-6, abs=1e-9), (name, k)


def test_evaluation_batches_split_over_ranks_cover_one_process_s_exactly():
    # Each rank takes every other batch of the same seeded stream, skipping the rest without
    # generating them; together they are one process's batches, in order.
    from sparsegan.metrics.features import image_batches
    from sparsegan.metrics.generator import generator_sampler
    from sparsegan.models import ModelSpec, build_models

    G, _ = build_models("dcgan", ModelSpec(channels=1, width=4))
    one = list(image_batches(generator_sampler(G, seed=3), 21, 4))
    shares = [list(image_batches(generator_sampler(G, seed=3), 21, 4, rank=r, world_size=2)) for r in (0, 1)]
    assert [b.shape[0] for b in shares[0]] == [4, 4, 4] and [b.shape[0] for b in shares[1]] == [4, 4, 1]
    merged = [shares[i % 2][i // 2] for i in range(len(one))]
    assert all(torch.equal(a, b) for a, b in zip(one, merged))


@pytest.mark.slow
def test_pf_under_torchrun_keeps_identical_masks(tmp_path):
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    common = ["--dataset", "mnist", "--data-root", str(data), "--model", "dcgan", "--model-width", "4",
              "--batch-size", "16", "--steps", "4", "--update-interval", "2", "--no-progress"]
    assert main(["train", *common, "--method", "dense", "--out", str(tmp_path / "dense")]) == 0
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "sparsegan", "train", *common, "--method", "pf", "--from", str(tmp_path / "dense"),
                           "--sparsity-g", "0.8", "--out", str(tmp_path / "pf")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    topo = read_records(tmp_path / "pf", "topology")
    assert topo and all(len(r["mask_checksums"]) == 2 and len(set(r["mask_checksums"])) == 1 for r in topo)


def test_diffusion_two_process_run_matches_one_process(tmp_path):
    """The denoiser under torchrun: the global batch's noise and steps are drawn once and sharded, so the
    losses before the first topology update are one process's (to reduction order); the ranks hold one
    mask at every update, and the masks match one process's but for near-ties of the regrowth scores."""
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    common = ["train", "--dataset", "mnist", "--data-root", str(data), "--model", "unet", "--model-width", "8",
              "--method", "stu", "--sparsity-g", "0.8", "--steps", "6", "--update-interval", "2",
              "--batch-size", "8", "--sample-steps", "2", "--num-sample-images", "4", "--seed", "5",
              "--log-every", "1", "--checkpoint-every", "3", "--sparse-compute", "off", "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sparsegan", *common, "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    ddp, one = tmp_path / "ddp", tmp_path / "one"
    topo, topo_one = read_records(ddp, "topology"), read_records(one, "topology")
    assert [r["step"] for r in topo] == [2, 4] and all(r["net"] == "G" for r in topo)
    assert all(len(r["mask_checksums"]) == 2 and r["mask_checksums"][0] == r["mask_checksums"][1] for r in topo)
    # "pruned" counts connections really removed (not regrown at once), so a near-tie of the regrowth scores
    # moves it by one; how many near-ties there are depends on the CPU's rounding of the reductions (2 of 1,153
    # on one machine, 0 on another): within the same 1 % as the masks below
    for a, b in zip(topo, topo_one):
        assert abs(a["pruned"] - b["pruned"]) <= 0.01 * b["pruned"], (a["pruned"], b["pruned"])
    ma, mb = load_file(ddp / "final" / "masks.safetensors"), load_file(one / "final" / "masks.safetensors")
    assert ma.keys() == mb.keys()
    same = sum(int((ma[k] == mb[k]).sum()) for k in ma)
    assert same / sum(m.numel() for m in ma.values()) >= 0.99
    # where both hold a weight, the two runs trained it alike (the same data, noise and steps)
    wa, wb = load_file(ddp / "final" / "generator.safetensors"), load_file(one / "final" / "generator.safetensors")
    # Adam moves a weight up to lr (2e-4) a step: other noise or images would differ by ~1e-3 in 6 steps. A weight
    # whose gradient is near 0 can take a step of another size from a reduction rounded otherwise (Adam divides
    # by its root mean square), and how many there are depends on the CPU: nearly all agree to 1e-4
    close = total = 0
    for key, m in ma.items():
        both = m.bool() & mb[key].bool()
        close += int(((wa[key[2:]][both] - wb[key[2:]][both]).abs() <= 1e-4).sum())
        total += int(both.sum())
    assert close >= 0.99 * total, (close, total)
