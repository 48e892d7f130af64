.PHONY: demo test setup lint bench

# Install what is missing (Debian packages, .venv, LiveKit server, models, npm) and run the demo.
demo: setup
	.venv/bin/greenroom demo

# Install what is missing the same way and run the whole test suite.
test: setup
	bash scripts/test.sh

setup:
	@bash scripts/setup.sh

lint: setup
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

bench: setup
	.venv/bin/python bench/keying.py
