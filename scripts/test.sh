#!/usr/bin/env bash
# Set up, lint, and run every test: the fast suite, then the tests that load the real model.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/ensure_services.sh
. .venv/bin/activate
ruff check .
ruff format --check .
mypy  # the packages and exceptions are in pyproject.toml [tool.mypy]
python -m pytest -q
python -m pytest -q -m slow
