#!/usr/bin/env bash
# Set up everything the tests need, then run the whole suite. This is the README's test command
# and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# VENV / CONSTRAINTS (see setup.sh) test another virtualenv, e.g. the Jetson versions in CI
exec "${VENV:-.venv}/bin/python" -m pytest -ra "$@"
