#!/usr/bin/env bash
# Set up everything the tests need, then run the whole suite. This is the README's test command
# and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# VENV / CONSTRAINTS (see setup.sh) test another virtualenv, e.g. the Jetson versions in CI
venv="${VENV:-.venv}"
# the house style first (ruff.toml), in a second: a formatting slip fails here, not in review
"$venv/bin/ruff" format --check . || { echo "ruff format would change the files above: run $venv/bin/ruff format ." >&2; exit 1; }
"$venv/bin/ruff" check --quiet .
exec "$venv/bin/python" -m pytest -ra "$@"
