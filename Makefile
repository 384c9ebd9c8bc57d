# Developer entry points: `make run` starts the whole system locally, `make test` runs every test.
# Both install first, but only what changed since the last install (stamp files in .venv/ and node_modules/).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.requirements.stamp
NPM_STAMP := node_modules/.package-lock.stamp
API_PORT ?= 8080
AWS_PORT ?= 4566
# Two pytest workers (pytest-xdist): the suite's end-to-end tests wait on subprocesses more than they compute, and
# a serial run takes over 20 minutes on 2 cores. `make test PYTEST_ARGS=` runs it serially.
PYTEST_ARGS ?= -n 2

# jsii and the CDK CLI: no Node end-of-life banner, no version check, no telemetry.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_DISABLE_CLI_TELEMETRY := true
export AWS_EC2_METADATA_DISABLED := true

.PHONY: run test bench chaos install system-deps python-deps node-deps synth cfn-lint cdk-synth images lock

run: install
	$(PY) -m runtime.local --api-port $(API_PORT) --aws-port $(AWS_PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# The performance benchmark of issues 5 and 13 (about 20 minutes on 2 cores); BENCH_ARGS e.g. --repeats 1.
bench: python-deps
	$(PY) -m benchmarks $(BENCH_ARGS)

# The chaos suite of issue 11 (benchmarks/chaos.py, a few minutes): 1,000 jobs while the worker and the API are
# SIGKILLed, the emulator frozen and a proxy injects AWS faults; prints the figures, exits 1 on a broken promise.
# CHAOS_ARGS e.g. --seed 2 or --short (the plan tests/e2e/test_chaos.py runs in `make test`).
chaos: python-deps
	$(PY) -m benchmarks.chaos $(CHAOS_ARGS)

install: system-deps python-deps node-deps

# CloudFormation of one environment (ENV=local|dev|staging|prod|all) as JSON and YAML in cdk.out/<env>/.
ENV ?= all
synth: python-deps
	$(PY) -m stacks.synth --env $(ENV)

# cfn-lint over every synthesized template (.cfnlintrc.yaml lists them).
cfn-lint: synth
	$(VENV)/bin/cfn-lint

# The same through the pinned CDK CLI, offline (e.g. make cdk-synth ENV=prod).
cdk-synth: install
	npx cdk synth --quiet -c env=$(if $(filter all,$(ENV)),dev,$(ENV))

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# Operating-system packages the tests need: podman, buildah, runc and mmdebstrap build and run the container
# images without a Docker engine (tests/delivery/test_images.py). apt-get runs only when one is missing.
# shellcheck: actionlint runs it on the workflows' scripts (tests/delivery/test_workflows.py).
# chromium: the web console's browser tests (tests/e2e/test_console_browser.py) drive Debian's Chromium with
# Playwright, which never downloads a browser of its own (JOBS_TEST_CHROMIUM names another Chromium-based browser).
# tmux: the CLI's live progress is read off a real terminal (tests/clients/test_cli_terminal.py).
system-deps:
	.ci/images.sh deps
	command -v shellcheck >/dev/null 2>&1 || $(SUDO) apt-get install -y -q shellcheck \
		|| { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q shellcheck; }
	test -x "$${JOBS_TEST_CHROMIUM:-/usr/bin/chromium}" \
		|| $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
		|| { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends chromium; }
	command -v tmux >/dev/null 2>&1 || $(SUDO) apt-get install -y -q tmux \
		|| { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q tmux; }

# The runtime images (api, worker, lambda, emulator) with podman, offline: see .ci/images.sh.
images: system-deps python-deps
	.ci/images.sh all api worker lambda emulator

# The lock files the images install from (Dockerfile, --require-hashes): every package, transitive ones included,
# pinned by version and hash. Run after changing runtime/requirements.txt, .ci/requirements-lambda.txt or moto's
# pin in requirements.txt; tests/delivery/test_locks.py fails until then. Existing pins are kept unless
# LOCK_ARGS=--upgrade (or --upgrade-package NAME).
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(LOCK_ARGS)

lock: python-deps
	$(PIP_COMPILE) -o runtime/requirements.lock runtime/requirements.txt
	$(PIP_COMPILE) -o .ci/requirements-lambda.lock runtime/requirements.txt .ci/requirements-lambda.txt
	grep -E '^moto\[server\]==' requirements.txt | $(PIP_COMPILE) -o .ci/requirements-emulator.lock -

python-deps: $(PIP_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(PIP_STAMP): requirements.txt runtime/requirements.txt clients/python/pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

ifneq ($(wildcard package.json),)
node-deps: $(NPM_STAMP)

$(NPM_STAMP): package.json $(wildcard package-lock.json)
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
	touch $@
else
node-deps:
	@:
endif
