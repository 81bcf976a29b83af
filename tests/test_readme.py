"""The README and the documentation pages (docs/) say only what is true of the repository.

Every `sparsegan` command of their bash blocks parses and validates as written (pasted, it must
work); every `python examples/...` command names a script that has its flags; every relative link
points to a file that exists; every page is in the site's navigation; every decimal the results
quote is in a file the Fashion-MNIST study generated. `make docs` (mkdocs build --strict) checks the
links between pages, their anchors and the API reference on top of this.
"""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from sparsegan.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
STUDY = ROOT / "benchmarks" / "study-fmnist"
VERBS = {"train", "eval", "sweep", "report", "flops", "export", "bench"}
DECIMAL = r"(?<![\d.])\d+\.\d+(?![\d.])"


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def bash_lines(page: Path) -> list[list[str]]:
    """The tokens of every command (split at &&) in the page's bash blocks, continuation lines joined."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            out += [tokens for part in line.split("&&") if (tokens := shlex.split(part, comments=True))]
    return out


def page_commands(page: Path) -> list[list[str]]:
    """argv of every `sparsegan ...` (or `... -m sparsegan ...`) command of the page's bash blocks."""
    out = []
    for tokens in bash_lines(page):
        if tokens[:1] == ["sparsegan"]:
            out.append(tokens[1:])
        elif "-m" in tokens and tokens[tokens.index("-m") + 1:][:1] == ["sparsegan"]:
            out.append(tokens[tokens.index("-m") + 2:])
    return out


def readme_commands() -> list[list[str]]:
    return page_commands(README)


def all_commands() -> list[tuple[str, list[str]]]:
    """(page, argv) of every command of the README and the docs, each distinct command once."""
    seen, out = set(), []
    for page in PAGES:
        for argv in page_commands(page):
            if tuple(argv) not in seen:
                seen.add(tuple(argv))
                out.append((_name(page), argv))
    return out


def test_the_readme_has_commands():
    assert VERBS <= {argv[0] for argv in readme_commands()}  # the quick tour shows every verb
    assert {"demo", "test"} <= {t[1] for t in bash_lines(README) if t[:1] == ["make"]}  # the two commands


def test_the_docs_have_commands():
    by_page = {_name(p): {argv[0] for argv in page_commands(p)} for p in PAGES}
    assert VERBS | {"data"} <= set().union(*by_page.values())
    assert "train" in by_page["docs/cli.md"] and "eval" in by_page["docs/evaluation.md"]
    assert {"flops", "export", "bench"} <= by_page["docs/efficiency.md"]


@pytest.mark.parametrize("page, argv", all_commands(), ids=lambda x: x if isinstance(x, str) else " ".join(x)[:70])
def test_readme_command_parses_and_validates(page, argv, monkeypatch):
    monkeypatch.chdir(ROOT)  # the commands name configs/ relative to the repository
    if "--help" in argv:
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)
        assert e.value.code == 0
        return
    args = build_parser().parse_args(argv)  # a bad flag or literal brackets fail here, in one line
    if args.command == "train":
        from dataclasses import fields

        from sparsegan.config import TrainConfig, build_config, load_yaml
        from sparsegan.recipes import resolve

        values = load_yaml(resolve(args.config, "train")) if args.config else {}
        values.update({k: v for k, v in vars(args).items() if k in {f.name for f in fields(TrainConfig)}})
        cfg = build_config(values)
        assert args.dry_run or cfg.out is not None, f"{page}: a train command without --out fails when pasted"
    elif args.command == "sweep":
        from sparsegan.experiments.grid import load_grid, parse_overrides
        from sparsegan.recipes import resolve

        grid = load_grid(resolve(args.grid, "sweep"), parse_overrides(args.set))  # base and eval: keys, all validated
        assert args.out or grid.out


def test_example_commands_name_scripts_with_their_flags():
    """`python examples/x.py --flag ...` (or torchrun ... examples/x.py): the script exists and takes each flag."""
    checked = 0
    for page in PAGES:
        for tokens in bash_lines(page):
            scripts = [t for t in tokens if t.startswith("examples/") and t.endswith(".py")]
            if not scripts:
                continue
            text = (ROOT / scripts[0]).read_text()  # FileNotFoundError names a script that is gone
            after = tokens[tokens.index(scripts[0]) + 1:]
            for flag in (t for t in after if t.startswith("--")):
                assert f'"{flag}"' in text, f"{_name(page)}: {scripts[0]} has no flag {flag}"
            checked += 1
    assert checked >= 5


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # not in code blocks
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_relative_links_point_to_files():
    """On GitHub as on the site: README -> docs/x.md, page -> page, with or without an #anchor."""
    count = 0
    for page in PAGES:
        for link in _links(page):
            if re.match(r"[a-z]+:", link) or link.startswith("#"):
                continue
            target = (page.parent / link.split("#")[0]).resolve()
            assert target.is_file(), f"{_name(page)} links to {link}, which does not exist"
            count += 1
    assert count >= 20
    assert {"docs/getting-started.md", "docs/cli.md", "docs/api.md", "docs/methods.md",
            "docs/results.md"} <= {link.split("#")[0] for link in _links(README)}


def test_every_page_is_in_the_site_navigation():
    def paths(nav):
        for item in nav:
            for value in item.values():
                yield from (paths(value) if isinstance(value, list) else [value])

    nav = set(paths(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert nav == pages, (sorted(pages - nav), sorted(nav - pages))


def test_repository_paths_named_in_the_pages_exist():
    """A file or folder named in a code span (`configs/demo.yaml`, `benchmarks/study-fmnist/`) exists; braces expand."""
    count = 0
    for page in PAGES:
        for span in re.findall(r"`([^`\s]+)`", page.read_text()):
            if not re.fullmatch(r"(benchmarks|configs|examples|scripts|tests|src|sparsegan)/[\w./{},-]*", span):
                continue
            head, _, rest = span.partition("{")
            alts, _, tail = rest.partition("}")
            names = [head + alt + tail for alt in alts.split(",")] if rest else [span]
            for name in names:
                path = ROOT / ("src/" + name if name.startswith("sparsegan/") else name)
                assert path.exists(), f"{_name(page)} names {span}, which does not exist"
                count += 1
    assert count >= 30


def _decimals(text: str) -> set[str]:
    return set(re.findall(DECIMAL, text))


def test_results_quote_the_generated_files():
    """Every decimal of the Results page and of the README's results is in a file the study generated (or its
    README): a number that changes with new runs must be re-quoted, not left stale."""
    present = _decimals(" ".join(p.read_text() for p in STUDY.glob("*.md")))
    page = (DOCS / "results.md").read_text()
    front = README.read_text().split("## Results: the Fashion-MNIST study")[1].split("\n## ")[0]
    for name, text in (("docs/results.md", page), ("README.md", front)):
        quoted = _decimals(text)
        assert len(quoted) > 20, name
        assert quoted <= present, (name, sorted(quoted - present))


def test_the_readme_diffusion_results_quote_the_diffusion_study():
    """The README's sentence on the diffusion study: its decimals and its bold verdict words are in the
    study's generated results (benchmarks/study-diffusion/results.md)."""
    study = (ROOT / "benchmarks" / "study-diffusion" / "results.md").read_text()
    section = README.read_text().split("## Diffusion models")[1].split("\n## ")[0]
    quoted = _decimals(section)
    assert quoted and quoted <= _decimals(study), sorted(quoted - _decimals(study))
    for word in re.findall(r"\*\*([^*]+)\*\*", section):
        assert f"**{word}**" in study, word


def test_the_readme_stays_a_front_page():
    """The details live in docs/: the README is what sparsegan is, the two commands, a tour and links."""
    lines = README.read_text().splitlines()
    assert len(lines) <= 160, f"README.md has {len(lines)} lines: move details into a page of docs/"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings.index("## Quick tour") < headings.index("## Results: the Fashion-MNIST study")


SPEED = ROOT / "benchmarks" / "training-speed" / "results" / "training_speed.json"
UNET_SPEED = ROOT / "benchmarks" / "training-speed" / "results" / "unet_training_speed.json"
UNET_SPEED_2 = ROOT / "benchmarks" / "training-speed" / "results" / "unet_training_speed_2threads.json"


def test_the_readme_speed_claims_are_the_benchmarks():
    """The front page's training-speed sentence, numbers and verdict words, against the committed
    benchmark results (benchmarks/training-speed/results/training_speed.json)."""
    import json
    import statistics

    res = json.loads(SPEED.read_text())
    text = " ".join(README.read_text().split("**Sparse training that runs faster")[1].split("\n\n")[0].split())
    big = [r for r in res["layers"] if r["model"] == "mlp" and r["net"] == "G" and r["batch"] == 64
           and r["threads"] == 1 and r["sparsity"] == 0.95 and r["layer"] in ("Linear(512, 1024)", "Linear(1024, 784)")]
    speeds = sorted(r["speedup_vs_dense"] for r in big)
    assert f"ran forward + backward {speeds[0]:.2f}x and {speeds[1]:.2f}x faster than dense PyTorch" in text

    def cells(model):
        return [r["speedup_vs_dense"] for r in res["runs"]
                if r["model"] == model and r["method"] != "dense" and r["sparsity_g"] == 0.95]

    mlp, dcgan = cells("mlp"), cells("dcgan")
    assert f"mlp at s_G 95 % {min(mlp):.2f}x to {max(mlp):.2f}x faster than dense ones" in text and min(mlp) > 1.05
    # the verdict word as well as the numbers: "Not faster" where a cell ran slower than dense
    word = "Not faster" if min(dcgan) < 1.0 else "Hardly faster" if max(dcgan) < 1.2 else None
    assert word and f"{word}: the small DCGAN's steps ({min(dcgan):.2f}x to {max(dcgan):.2f}x" in text
    (dense,) = [r for r in res["profile"] if r["model"] == "mlp" and r["method"] == "dense"]
    assert f"would be at most {dense['limit_free_generator']:.2f}x faster" in text
    one, two = (json.loads(path.read_text()) for path in (UNET_SPEED, UNET_SPEED_2))
    ups = [statistics.median(u["variants"]["static auto"]["speedup_vs_dense"]) for u in (one, two)]
    assert f"those of the 90 %-sparse U-Net denoiser {ups[0]:.2f}x on one thread and {ups[1]:.2f}x on two" in text
    assert min(ups) > 1.05
    for unet, threads in ((one, 1), (two, 2)):
        assert unet["conditions"]["threads"] == threads and "--sparsity-g 0.9" in unet["command"] and \
            "--batch-size 64" in unet["command"]
        assert f"medians of {unet['conditions']['repetitions']} repetitions" in text


DEMO = ROOT / "benchmarks" / "demo" / "results.json"


def test_the_demo_numbers_are_the_committed_demo_run():
    """Getting started quotes `make demo`'s fid_domain@1000 per method: those of
    benchmarks/demo/results.json (written by benchmarks/demo/demo_numbers.py), to the printed digit."""
    import json

    runs = json.loads(DEMO.read_text())["runs"]
    text = " ".join((DOCS / "getting-started.md").read_text().split())
    quoted = (f"dense {runs['dense']['fid_domain']:.1f}, static {runs['static']['fid_domain']:.1f}, "
              f"STU-GAN {runs['stu']['fid_domain']:.1f}")
    assert quoted in text
    assert {r["steps"] for r in runs.values()} == {1000} and all(r["num_samples"] == 1000 for r in runs.values())
    sweep = yaml.safe_load((ROOT / "configs" / "sweeps" / "demo.yaml").read_text())
    assert sweep["base"]["steps"] == 1000 and sweep["eval"]["num_samples"] == 1000


@pytest.mark.slow
def test_make_demo_still_gives_the_quoted_numbers():
    """Re-runs the demo's sweep (about 2 minutes on 2 cores) and compares with the committed numbers
    to the printed digit: a change of the engine that moves them fails here (make test-all)."""
    import subprocess
    import sys

    from conftest import has_fashion_mnist

    if not has_fashion_mnist():
        pytest.skip("Fashion-MNIST (dataset-fashion-mnist) not installed")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "demo" / "demo_numbers.py"), "--check"],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_the_efficiency_page_quotes_the_update_step_ratios():
    """docs/efficiency.md's update-step ratios are the committed training-speed benchmark's."""
    import json

    rows = {r["sparse_compute"]: r for r in json.loads(SPEED.read_text())["updates"] if r["model"] == "mlp"}
    text = " ".join((DOCS / "efficiency.md").read_text().split())
    assert (f"an update step {rows['auto']['update_vs_plain']:.2f}x a plain one with `auto`, "
            f"{rows['off']['update_vs_plain']:.2f}x on the masked path") in text


def test_the_models_page_training_speed_is_the_benchmark():
    """docs/models.md's sentences on U-Net training at one and two threads quote the committed benchmarks
    (benchmarks/training-speed/results/unet_training_speed*.json): ranges and medians."""
    import json
    import statistics

    page = " ".join((ROOT / "docs" / "models.md").read_text().split())
    one_text = page.split("Training gains almost as much as sampling")[1].split("At two threads")[0]
    two_text = page.split("At two threads")[1].split("Before, with a barrier per image")[0]
    for path, text, threads in ((UNET_SPEED, one_text, 1), (UNET_SPEED_2, two_text, 2)):
        res = json.loads(path.read_text())
        assert res["conditions"]["threads"] == threads and "--batch-size 64" in res["command"]
        for mode in ("auto", "on"):
            ups = res["variants"][f"static {mode}"]["speedup_vs_dense"]
            assert f"{min(ups):.2f}-{max(ups):.2f}x" in text and f"(median {statistics.median(ups):.2f}x)" in text, \
                (threads, mode)
        dense = res["variants"]["dense off"]["images_per_s"]
        assert f"{min(dense):.0f}-{max(dense):.0f}" in text, threads
