# The two commands of the README. Both set up everything they need on a fresh machine.
.PHONY: demo test setup

setup:
	@bash scripts/setup.sh

# The main job, offline: prepare -> train -> quantize -> export -> evaluate on the bundled demo data.
demo: setup
	.venv/bin/kwstool run

# The whole test suite (the same command CI runs).
test:
	@bash scripts/setup.sh --test
	.venv/bin/python -m pytest
