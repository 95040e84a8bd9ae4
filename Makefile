# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv on first use. torch is installed first from its CPU wheel so that no
# dependency can pull a multi-GB CUDA build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

.PHONY: setup sysdeps demo test lint bench
setup: $(STAMP)

# Headless MuJoCo rendering (MUJOCO_GL=egl) through Mesa's software EGL. Installed only when
# missing, and only where we may (root); otherwise the rendering tests skip with a reason.
EGL_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libopengl0
sysdeps:
	@$(PY) -c "import ctypes; ctypes.CDLL('libEGL.so.1'); ctypes.CDLL('libOpenGL.so.0')" 2>/dev/null \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	       && apt-get update -qq && apt-get install -y -qq $(EGL_PACKAGES) >/dev/null; } \
	  || echo "note: EGL libraries missing; MuJoCo rendering tests will be skipped"

demo: $(STAMP)
	$(BIN)/irl demo --seed 0

test: $(STAMP) sysdeps
	MUJOCO_GL=egl $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

# env throughput (seconds), then the pretraining loop before/after the compute campaign (~20 min)
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_grid.py
	$(BIN)/python benchmarks/bench_pretrain.py
