#!/usr/bin/env bash
# Run the whole test suite (after scripts/setup.sh). Fails if no test ran (pytest exit 5).
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests bench || { echo "ruff found problems" >&2; exit 1; }
.venv/bin/mypy || { echo "mypy found problems (strict on api, avatars, compositor, keying)" >&2; exit 1; }
.venv/bin/python -m pytest "$@"
rc=$?
if [[ $rc -eq 5 ]]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit $rc
