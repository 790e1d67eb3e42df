# The two commands of the README: `make run` (dashboard) and `make test` (whole test suite).
# Both create or reuse .venv in the repo root, install requirements.txt and the project itself
# (editable, so that `import app, backend, …` works from anywhere) when either changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8501
# The dashboard has no login: it listens on this machine only. To open it to a network on
# purpose, read "Opening the dashboard to a network" in README.md first
# (make run ADDRESS=0.0.0.0 HOSTS=name.of.this.machine).
ADDRESS ?= 127.0.0.1
# Host names a browser may use besides localhost (the DNS-rebinding guard of
# .streamlit/config.toml); '*' accepts any.
HOSTS  ?=

.PHONY: run test setup data bench clean-venv

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	$(PY) -m app generate --if-missing

ALLOW  := $(foreach h,$(if $(HOSTS),localhost 127.0.0.1 ::1 $(HOSTS)),--server.allowedHosts '$(h)')

run: data
	$(PY) -m streamlit run app/Home.py --server.port $(PORT) --server.address $(ADDRESS) \
		--server.headless true $(ALLOW)

test: $(STAMP)
	$(PY) -m pytest

bench: data
	$(PY) bench/bench_osse.py
	$(PY) bench/bench_oi.py
	$(PY) bench/bench_unet.py
	$(PY) bench/bench_memory.py
	$(PY) bench/backend.py
	$(PY) bench/throughput.py
	$(PY) bench/gpu.py

clean-venv:
	rm -rf $(VENV)
