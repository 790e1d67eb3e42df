# The two commands of the README: `make run` (dashboard) and `make test` (whole test suite).
# Both create or reuse .venv in the repo root and install requirements.txt when it changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8501

.PHONY: run test setup data bench clean-venv

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	$(PY) -m app generate --if-missing

run: data
	$(PY) -m streamlit run app/Home.py --server.port $(PORT) --server.headless true

test: $(STAMP)
	$(PY) -m pytest

bench: data
	$(PY) bench/bench_osse.py
	$(PY) bench/bench_oi.py
	$(PY) bench/bench_unet.py

clean-venv:
	rm -rf $(VENV)
