# glus-cli developer commands. `make install` builds .venv from the pinned lock; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pip must not resolve anything itself: every package is pinned in the lock and installed with --no-deps,
# so a fresh machine gets exactly the CPU torch build and no torchvision/CUDA wheels.
PIP := $(BIN)/python -m pip install --no-deps --disable-pip-version-check -q

.PHONY: install test lint format lock bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements/cpu.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements/cpu.lock
	# sam2 is source-only; its declared deps would pull torchvision and CUDA torch. Build it without them.
	SAM2_BUILD_CUDA=0 $(PIP) --no-build-isolation sam2==1.1.0
	$(PIP) --no-build-isolation -e .
	touch $@

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python benchmarks/bench_inference.py

# Re-resolve the lock from pyproject.toml in a scratch venv (needs the package registries). sam2 is left
# out on purpose: it is installed with --no-deps (see install) because its metadata pulls torchvision.
lock:
	rm -rf /tmp/glus-lock && $(PYTHON) -m venv /tmp/glus-lock
	/tmp/glus-lock/bin/pip install -q torch==2.13.0
	/tmp/glus-lock/bin/pip install -q setuptools wheel $$($(PYTHON) requirements/deps.py)
	{ head -n 3 requirements/cpu.lock; /tmp/glus-lock/bin/pip freeze | sed 's/+cpu//'; } > requirements/cpu.lock.new
	mv requirements/cpu.lock.new requirements/cpu.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
