# The two commands of the README. Everything they need is installed by scripts/setup.sh from pinned files.
.PHONY: run test setup bench lint

run:          ## set up, then run web, worker, beat and the local chain with a demo merchant (Ctrl-C stops all)
	@bash scripts/setup.sh
	@bash scripts/run.sh

test:         ## set up, then run the whole test suite against real PostgreSQL, Redis and anvil
	@bash scripts/setup.sh --test
	@.venv/bin/python -m pytest $(PYTEST_ARGS)

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
