"""The system libraries Qt's xcb platform plugin needs, and the apt-get line that installs them.

On a fresh Debian or Ubuntu, PySide6's wheels bring Qt but not the X11 client libraries its xcb
plugin links to (libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, ...); Qt then aborts with a
message that names one of them. This module asks ``ldd`` which of the plugin's libraries are not
found and maps them to Debian packages. scripts/setup.sh runs it (``python -m
faig_gui.app.qt_libs``) and the window's start (launch.py) prints the same line when Qt cannot
load the plugin. Imports no Qt: it must run where Qt cannot start.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

#: shared object -> Debian/Ubuntu package, for every library libqxcb.so (Qt 6) links to that a
#: minimal system may lack (names as in Debian 12 and Ubuntu 22.04/24.04)
PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libOpenGL.so.0": "libopengl0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
}
#: what Qt 6.5+ needs beyond a desktop-less Debian's usual libraries: checked with ``ldconfig -p``
#: where ``ldd`` is not installed
ESSENTIAL = ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-image.so.0",
             "libxcb-render-util.so.0", "libxcb-xkb.so.1", "libxkbcommon-x11.so.0", "libxcb-shape.so.0",
             "libxcb-randr.so.0", "libxcb-xfixes.so.0", "libxcb-sync.so.1", "libxcb-shm.so.0",
             "libX11-xcb.so.1", "libEGL.so.1", "libfontconfig.so.1", "libdbus-1.so.3")
_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)


def xcb_plugin() -> Path | None:
    """PySide6's libqxcb.so, or None where PySide6 or the plugin is not installed."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if path.is_file():
            return path
    return None


def not_found(ldd_output: str) -> list[str]:
    """The libraries ``ldd`` reports as 'not found', each once, in its order."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def missing_libraries(plugin: Path | None = None) -> list[str]:
    """Libraries the xcb plugin needs and the system lacks (ldd; else ldconfig -p and ESSENTIAL)."""
    plugin = plugin or xcb_plugin()
    if plugin is not None and shutil.which("ldd"):
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30)
        return not_found(out.stdout + out.stderr)
    ldconfig = shutil.which("ldconfig") or ("/sbin/ldconfig" if Path("/sbin/ldconfig").exists() else None)
    if ldconfig is None:
        return []
    listed = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=30).stdout
    return [lib for lib in ESSENTIAL if f"{lib} " not in listed]


def packages_for(libraries: list[str]) -> list[str]:
    """Debian packages providing ``libraries`` (a library not in PACKAGES is named as itself)."""
    return list(dict.fromkeys(PACKAGES.get(lib, lib) for lib in libraries))


def apt_line(packages: list[str], root: bool | None = None) -> str:
    """The command that installs ``packages`` (with sudo unless run as root)."""
    root = (os.geteuid() == 0) if root is None else root
    return ("" if root else "sudo ") + "apt-get install -y " + " ".join(packages)


def explain(qt_message: str = "") -> str:
    """What to tell a user whose Qt could not load its platform plugin."""
    libs = missing_libraries() if sys.platform.startswith("linux") else []
    if libs:
        return (f"faig-gui cannot open its window: Qt's xcb platform plugin needs system libraries that are "
                f"missing ({', '.join(libs)}). Install them with:\n\n    {apt_line(packages_for(libs))}\n\n"
                f"(scripts/setup.sh checks these and installs them when run as root.)")
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    hint = (f"the display {display!r} could not be opened" if display else "no display is set (DISPLAY)")
    return (f"faig-gui cannot open its window: Qt could not start a platform plugin ({hint}). "
            f"Qt said: {qt_message.strip() or 'nothing more'}\nOn a machine without a screen, run it under "
            f"xvfb-run, or set QT_QPA_PLATFORM=offscreen for --screenshot.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m faig_gui.app.qt_libs",
                                description="List the Debian packages Qt's xcb plugin still needs.")
    p.add_argument("--apt-line", action="store_true", help="print the apt-get command instead of the names")
    args = p.parse_args(argv)
    packages = packages_for(missing_libraries())
    if args.apt_line:
        if packages:
            print(apt_line(packages))
    else:
        print("\n".join(packages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
