#!/usr/bin/env bash
# One command from a fresh clone to a working faig-gui: a venv in .venv with the CPU build of
# torch (pinned: an unpinned torch pulls a multi-GB CUDA build), the package (editable) and the
# test tools; then the system libraries Qt's window needs (xcb platform plugin).
#
#   bash scripts/setup.sh                 everything
#   bash scripts/setup.sh --system-only   only check (and as root install) the system libraries
#
# System packages (Debian/Ubuntu, apt-get): as root they are installed (apt-get update, then
# apt-get install -y, non-interactive); otherwise the exact 'sudo apt-get install -y ...' line is
# printed and nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}   # the Python that makes .venv; VENV_PYTHON: the venv's (default .venv/bin/python)

as_root() { [ "$(id -u)" = 0 ]; }

apt_install() {   # apt_install PACKAGE... : install as root, else print the line to run
    if as_root && command -v apt-get >/dev/null 2>&1; then
        echo "installing system packages: $*"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    else
        echo "faig-gui needs these system packages; install them with:"
        echo "    sudo apt-get install -y $*"
        return 1
    fi
}

make_venv() {
    [ -x .venv/bin/python ] && return 0
    if ! "$PY" -m venv .venv 2>/dev/null; then
        # Debian and Ubuntu ship venv's pip bootstrap separately (python3-venv)
        rm -rf .venv
        apt_install python3-venv || exit 1
        "$PY" -m venv .venv
    fi
}

qt_system_libraries() {
    # which libraries PySide6's libqxcb.so links to that are not installed (ldd; ldconfig -p where
    # ldd is missing), as Debian package names: faig_gui/app/qt_libs.py, shared with faig-gui's
    # own message when Qt cannot start
    local missing
    missing=$("${VENV_PYTHON:-.venv/bin/python}" -m faig_gui.app.qt_libs)
    if [ -z "$missing" ]; then
        echo "Qt's system libraries: all present"
        return 0
    fi
    # shellcheck disable=SC2086  # one package per word
    apt_install $missing || echo "(faig-gui's headless commands work without them; its window does not)"
}

if [ "${1:-}" != "--system-only" ]; then
    make_venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[test]"
fi
qt_system_libraries
echo "faig-gui is installed in .venv: run '.venv/bin/faig-gui' or 'source .venv/bin/activate'"
