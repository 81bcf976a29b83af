"""The CPU times the README and docs/evaluation.md give beside the evaluation commands follow from
the committed Inception throughput measurement
(benchmarks/metrics/results/metrics_inception_cpu_throughput.json)."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ROOT / "benchmarks" / "metrics" / "results" / "metrics_inception_cpu_throughput.json"


def _text(path: Path) -> str:
    return " ".join(path.read_text().replace("\n#", "\n").split())  # a bash comment's lines joined


def test_evaluation_times_are_the_measured_throughput():
    res = json.loads(MEASURED.read_text())
    rate, ceiling = res["images_per_s"]["shipped"], res["images_per_s_at_gemm_rate"]

    def minutes(images: int) -> float:
        return images / rate / 60

    page = _text(ROOT / "docs" / "evaluation.md")
    assert f"TF-Inception features ran at {rate:.1f} images/s on 2 CPU cores" in page
    assert f"ceiling at its measured matrix-product rate is {ceiling:.1f} images/s" in page
    assert f"10,000 images take about {minutes(10_000):.0f} min, 50,000 about {minutes(50_000):.0f} min" in page
    # beside the commands: the generated images, and the first time the real ones too (then cached)
    assert f"about {minutes(10_000):.0f} min on 2 CPU cores, {minutes(20_000):.0f} min the first time" in page
    first = minutes(50_000 + 60_000) / 60  # + the whole Fashion-MNIST training split, in hours
    assert f"about {minutes(50_000):.0f} min on 2 CPU cores, about {first:.1f} h the first time" in page
    readme = _text(ROOT / "README.md")
    assert f"TF-Inception FID: about {minutes(10_000):.0f} min per 10,000 images on 2 cores" in readme
