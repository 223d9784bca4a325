# The two commands of the README. Everything they need is installed by scripts/setup.sh from pinned files.
.PHONY: run test setup bench lint

# The suite runs in pytest-xdist workers, whole test files each (module fixtures are set up once): two on this 2-core
# kind of machine, where most of a run is spent waiting on processes and chains. `make test PYTEST_WORKERS=0` runs it
# in one process; each worker has its own test database and Redis database (gateway/settings/test.py).
PYTEST_WORKERS ?= 2

run:          ## set up, then run web, worker, beat and the local chain with a demo merchant (Ctrl-C stops all)
	@bash scripts/setup.sh
	@bash scripts/run.sh

test:         ## set up, then run the whole test suite against real PostgreSQL, Redis and anvil
	@bash scripts/setup.sh --test
	@.venv/bin/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

setup:
	@bash scripts/setup.sh --test

bench:        ## every benchmark of bench/ (each one also runs alone: see bench/README.md)
	@bash scripts/setup.sh --bench
	@.venv/bin/python bench/create_intents.py
	@.venv/bin/python bench/webhooks.py
	@.venv/bin/python bench/chain_ingest.py
	@.venv/bin/python bench/chain_latency.py
	@.venv/bin/python bench/whole_system.py
	@.venv/bin/python bench/sender_idle.py
	@.venv/bin/python bench/sweeps.py
	@.venv/bin/python bench/sweeps_system.py
	@.venv/bin/python bench/portal_payments.py
