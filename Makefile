# The two commands of the README. Both set up everything they need on a fresh machine.
.PHONY: demo test lint setup

setup:
	@bash scripts/setup.sh

# The main job, offline: prepare -> train -> quantize -> export -> evaluate on the bundled demo data.
demo: setup
	.venv/bin/kwstool run --resume

# The gates (ruff, ruff format, mypy --strict, clang-format), then the whole test suite: the
# same command CI runs (with TF_ENABLE_ONEDNN_OPTS=0, TensorFlow's stock CPU kernels).
test:
	@bash scripts/setup.sh --test
	@PATH="$(CURDIR)/.venv/bin:$$PATH" bash scripts/lint.sh
	.venv/bin/python -m pytest

lint:
	@bash scripts/setup.sh --test
	@PATH="$(CURDIR)/.venv/bin:$$PATH" bash scripts/lint.sh
