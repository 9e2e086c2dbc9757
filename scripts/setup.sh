#!/usr/bin/env bash
# One command from a fresh clone to a working faig-gui: a venv in .venv with the CPU build of
# torch (pinned: an unpinned torch pulls a multi-GB CUDA build), the package (editable) and the
# test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
echo "faig-gui is installed in .venv: run '.venv/bin/faig-gui' or 'source .venv/bin/activate'"
