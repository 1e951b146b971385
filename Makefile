# Baton developer commands. Every target sets up what it needs on a fresh machine:
# a virtualenv in .venv, buf from npm in .tools, redis-server from apt for the tests.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
PROTOS := $(wildcard proto/baton/v1/*.proto)

.PHONY: install proto proto-check lint breaking format redis-server chromium postgresql console-vendor test run bench fuzz chaos clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(BUF):
	npm install --prefix .tools --no-audit --no-fund --silent @bufbuild/buf@$(BUF_VERSION)

# Regenerates the committed stubs (messages, .pyi types, typed gRPC stubs) from proto/.
proto: install
	rm -f client/baton/v1/*_pb2*.py client/baton/v1/*_pb2*.pyi
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -I proto \
		--python_out=client --pyi_out=client --grpc_python_out=client \
		--mypy_grpc_out=quiet:client $(PROTOS)

# Fails when the committed stubs differ from what `make proto` generates.
proto-check: proto
	@git add -N client/baton/v1
	@git diff --exit-code --stat -- client/baton/v1 || \
		(echo "stubs in client/baton/v1 are stale: run 'make proto' and commit" && exit 1)

lint: install $(BUF)
	$(BIN)/ruff check client server tests bench examples
	$(BIN)/ruff format --check client server tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BUF) lint
	$(BUF) format --diff --exit-code

# The v1 API never breaks: compare proto/ with the first commit that published it.
breaking: $(BUF)
	@base=$$(git log --reverse --format=%H -- proto | head -n 1); \
	if [ -z "$$base" ]; then echo "buf breaking: no earlier proto on this branch"; \
	else $(BUF) breaking --against ".git#ref=$$base" && echo "buf breaking: compatible with $$base"; fi

format: install $(BUF)
	$(BIN)/ruff check --fix client server tests bench examples
	$(BIN)/ruff format client server tests bench examples
	$(BUF) format -w

# redis-server is needed by the tests (each run starts private ones on free ports).
redis-server:
	@command -v redis-server >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

# The Node.js worker example, which the tests run (dependencies from the npm registry).
examples/node-worker/node_modules: examples/node-worker/package-lock.json
	npm ci --prefix examples/node-worker --no-audit --no-fund --silent
	touch $@

# The console's browser tests: playwright-core (npm) driving Debian's Chromium (no download).
console/node_modules: console/package-lock.json
	npm ci --prefix console --no-audit --no-fund --silent
	touch $@

chromium:
	@test -x /usr/bin/chromium || \
		{ apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# Copies the console's libraries (dagre, Chart.js) from console/node_modules into the
# package; commit the result.
console-vendor: console/node_modules
	cd console && node vendor.mjs

# PostgreSQL for the second pass of the tests (each test makes its own database on it).
# On a machine without one running: install Debian's, let 127.0.0.1 in without a password
# (a test machine's), and start it.
postgresql:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { \
		command -v pg_ctlcluster >/dev/null || \
			{ apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }; \
		version=$$(ls /etc/postgresql | sort -n | tail -1); \
		hba=/etc/postgresql/$$version/main/pg_hba.conf; \
		grep -q '^host all all 127.0.0.1/32 trust' $$hba || \
			sed -i '1i host all all 127.0.0.1/32 trust' $$hba; \
		pg_ctlcluster --skip-systemctl-redirect $$version main start; \
		pg_isready -q -h 127.0.0.1 -p 5432 -t 30; }

# The suite on SQLite, then again on PostgreSQL (but the tests about SQLite itself).
# The tests run servers in the pytest process and start others (the CLI, workers, replicas)
# by fork and exec while gRPC's threads are busy (one such child, the CLI, once died of
# SIGSEGV). gRPC's fork handlers are for children that go on using gRPC;
# GRPC_ENABLE_FORK_SUPPORT=false is gRPC's documented setting for processes that exec after
# fork (read when gRPC loads, so set before pytest starts).
test: install redis-server chromium postgresql examples/node-worker/node_modules console/node_modules
	GRPC_ENABLE_FORK_SUPPORT=false $(BIN)/pytest
	GRPC_ENABLE_FORK_SUPPORT=false BATON_TEST_DATABASE=postgresql $(BIN)/pytest

# Serves the built-in agents and the examples' (examples/agents.py).
run: install
	$(BIN)/python -m baton_server --python-path $(CURDIR) --python-agent-modules baton_server.agents,examples --http-listen 127.0.0.1:8080

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache

# Benchmarks: a real server process driven over gRPC; prints JSON figures.
bench: install
	$(BIN)/python bench/run.py

# SIGKILLs a server at random moments under a mixed workload (fan-out, conditions, retries,
# fallbacks), ROUNDS times, and checks nothing is lost, stuck or re-run after its success.
ROUNDS ?= 20
chaos: install
	$(BIN)/python bench/chaos.py --rounds $(ROUNDS)

# The request fuzzer for longer than CI runs it: FUZZ_EXAMPLES generated requests over every
# RPC, with a fresh random seed each run (CI runs a fixed set of 600).
FUZZ_EXAMPLES ?= 40000
fuzz: install
	BATON_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) BATON_FUZZ_RANDOM=1 $(BIN)/pytest tests/test_fuzz.py -q
