#!/usr/bin/env bash
# Rewrite constraints.txt, the exact versions that the quickstart and .ci/run install (`pip install -c
# constraints.txt -e '.[test]'`): install facebias with its test extra into a new, temporary virtual environment
# and write what pip put there. Arguments go to that `pip install`:
#   scripts/lock.sh                      # the newest versions pyproject.toml's ranges allow today
#   scripts/lock.sh -c constraints.txt   # the current lock again, less the lines removed from it (upgrade those)
# When and how to use it: docs/development/dependencies.md.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install -q "$@" -e '.[test]'
frozen=$("$scratch/venv/bin/pip" freeze --all --exclude-editable | grep -v '^pip==')
python_version=$("$scratch/venv/bin/python" -c 'import platform; print(platform.python_version())')
{
  echo "# The exact versions that \`pip install -c constraints.txt -e '.[test]'\` installs: the quickstart's and .ci/run's."
  echo "# Written by scripts/lock.sh (Python $python_version, $(uname -sm)); to upgrade: docs/development/dependencies.md."
  echo "$frozen"
} > constraints.txt
echo "lock.sh: wrote $(echo "$frozen" | wc -l) versions to constraints.txt"
