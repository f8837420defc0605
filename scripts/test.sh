#!/usr/bin/env bash
# Set up everything the tests need, then run the whole suite. This is the README's test command
# and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest -ra "$@"
