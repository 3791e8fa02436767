# SCIP Jupyter — the two set-up commands are `make run` and `make test`.
# Everything else here is what they call.
SHELL := /bin/bash
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
# Debian's python3 lives outside /root, so an unprivileged account can run the
# single-user servers and Slurm workers from this venv when the hub runs as root.
PYTHON ?= $(shell [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3)
PORT ?= 8000
PYTEST_ARGS ?=
# e.g. HUB_LOAD_ARGS="--people 100 --rate 5 --real 5" on a busy machine (defaults: 500 people, 20 real servers)
HUB_LOAD_ARGS ?=
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)

.PHONY: run test setup system-deps node-deps slurm-start slurm-stop unit bench clean

JUPYTER_CONFIG := jupyter-config/scip_jupyter.json jupyter-config/jupyter_server_config.py jupyter-config/lab/overrides.json

$(VENV)/.installed: pyproject.toml $(JUPYTER_CONFIG)
	@[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip setuptools wheel
	$(VENV)/bin/pip install -q -e '.[test]'
	@# an editable install skips data-files: enable the server extension as a wheel install would;
	@# managed-platform defaults: JupyterLab news and update checks off, Dask scratch space per person
	install -D -m 644 jupyter-config/scip_jupyter.json $(VENV)/etc/jupyter/jupyter_server_config.d/scip_jupyter.json
	install -D -m 644 jupyter-config/jupyter_server_config.py $(VENV)/etc/jupyter/jupyter_server_config.py
	install -D -m 644 jupyter-config/lab/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

node_modules/.bin/configurable-http-proxy: package.json
	npm install --no-audit --no-fund --no-package-lock --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.bin/configurable-http-proxy

node-deps: node_modules/.bin/configurable-http-proxy

# Debian packages for the real components the tests start (root only).
system-deps:
ifeq ($(IS_ROOT),yes)
	scripts/system-deps
else
	@echo "system-deps: not root; assuming slurm-wlm, munge, chromium and openssh-server are installed"
endif

# The whole embedded platform: hub, proxy and, when root, the local Slurm (started if it is not
# running, and stopped again on exit only if it was not). Ctrl-C or SIGTERM stops everything.
run: setup
	exec $(VENV)/bin/scip-jupyter up --port $(PORT)

slurm-start: system-deps
	scripts/slurm-local start

slurm-stop:
	scripts/slurm-local stop

# Two pytest processes: the Kubernetes tests (kmock and the fake kubelet live in the test
# process's event loop) run on their own, after everything else; both always run, and
# `make test` fails if either does.
test: setup system-deps
	scripts/slurm-local start
	rc=0; \
	$(VENV)/bin/python -m pytest -m "not k8s" $(PYTEST_ARGS) || rc=$$?; \
	$(VENV)/bin/python -m pytest -m k8s $(PYTEST_ARGS) || rc=$$?; \
	exit $$rc

unit: setup
	$(VENV)/bin/python -m pytest tests/unit $(PYTEST_ARGS)

# Each benchmark prints ratios against its anchor measured in the same run.
bench: setup system-deps
	scripts/slurm-local start
	$(VENV)/bin/python benchmarks/arc_scaleup.py
	$(VENV)/bin/python benchmarks/kube_spawn.py
	$(VENV)/bin/python benchmarks/spawn_overhead.py
	$(VENV)/bin/python benchmarks/hub_spawn.py
	$(VENV)/bin/python benchmarks/hub_load.py $(HUB_LOAD_ARGS)
	$(VENV)/bin/python benchmarks/launch_link.py
	$(VENV)/bin/python benchmarks/gpu_cull.py
	$(VENV)/bin/python benchmarks/quota_cost.py

clean:
	-scripts/slurm-local stop
	-scripts/postgres-local stop
	-scripts/prometheus-local stop
	rm -rf .state test-artifacts
