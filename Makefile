# Shortcuts for the README's commands; scripts/setup.sh does the installing.
.PHONY: setup sim test lint bench clean

setup:
	bash scripts/setup.sh

sim: setup
	.venv/bin/farl sim fragile_push_wall

test:
	bash scripts/test.sh

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench: setup
	.venv/bin/python bench/bench_bags.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
