"""scripts/setup.sh and faig-gui on a machine that lacks Qt's system libraries: the exact
apt-get line, installed as root, printed otherwise; faig-gui prints it instead of Qt's abort."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from faig_gui.app import qt_libs

ROOT = Path(__file__).resolve().parents[1]
LDD_MISSING = """\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /x/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f01)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)
"""


def fake_tools(folder: Path, uid: int) -> Path:
    """ldd reporting two libraries missing, id answering ``uid``, apt-get recording its calls."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ldd").write_text("#!/bin/sh\nprintf '%s' '" + LDD_MISSING.replace("\t", "    ") + "'\n")
    (folder / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (folder / "apt-get").write_text(f"#!/bin/sh\necho \"$@\" >> {folder}/apt-calls\n")
    for tool in ("ldd", "id", "apt-get"):
        (folder / tool).chmod(0o755)
    return folder


def run_setup(tools: Path) -> subprocess.CompletedProcess:
    # the Python running the tests has faig-gui and PySide6, also where the checkout has no .venv
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}", "VENV_PYTHON": sys.executable}
    return subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), "--system-only"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_ldd_output_maps_to_the_debian_packages():
    assert qt_libs.not_found(LDD_MISSING) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    packages = qt_libs.packages_for(qt_libs.not_found(LDD_MISSING))
    assert qt_libs.apt_line(packages, root=False) == "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1"
    assert qt_libs.apt_line(packages, root=True) == "apt-get install -y libxcb-icccm4 libxcb-keysyms1"


@pytest.mark.skipif(qt_libs.xcb_plugin() is None or not sys.platform.startswith("linux"), reason="no xcb plugin")
def test_every_x11_library_the_installed_plugin_links_to_has_a_package():
    out = subprocess.run(["ldd", str(qt_libs.xcb_plugin())], capture_output=True, text=True).stdout
    names = set(re.findall(r"^\s*(\S+\.so\.\d+)", out, re.MULTILINE))
    x11 = {n for n in names if re.match(r"lib(xcb|X11|xkb|EGL|GL|dbus|fontconfig|freetype|glib|SM|ICE)", n)}
    assert "libxcb-cursor.so.0" in x11 and "libxcb-icccm.so.4" in x11
    assert x11 <= set(qt_libs.PACKAGES), sorted(x11 - set(qt_libs.PACKAGES))


def test_setup_prints_the_sudo_line_when_not_root(tmp_path):
    tools = fake_tools(tmp_path / "bin", uid=1000)
    proc = run_setup(tools)
    assert proc.returncode == 0, proc.stderr
    assert "    sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1\n" in proc.stdout
    assert not (tools / "apt-calls").exists()


def test_setup_installs_them_as_root(tmp_path):
    tools = fake_tools(tmp_path / "bin", uid=0)
    proc = run_setup(tools)
    assert proc.returncode == 0, proc.stderr
    calls = (tools / "apt-calls").read_text().splitlines()
    assert calls[0] == "update -qq"
    assert calls[1] == "install -y -qq --no-install-recommends libxcb-icccm4 libxcb-keysyms1"


def test_faig_gui_prints_the_line_when_qt_cannot_load_xcb(tmp_path):
    """Qt fails for want of a display here (xcb, DISPLAY pointing nowhere); with ldd reporting
    libraries missing faig-gui names the packages instead of Qt's abort."""
    tools = fake_tools(tmp_path / "bin", uid=1000)
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(PATH=f"{tools}:{env['PATH']}", DISPLAY=":97", QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT),
               XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_DATA_HOME=str(tmp_path / "data"))
    proc = subprocess.run([sys.executable, "-m", "faig_gui", "--empty"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    sudo = "" if os.geteuid() == 0 else "sudo "   # (the fake id fools setup.sh, not Python)
    assert f"\n    {sudo}apt-get install -y libxcb-icccm4 libxcb-keysyms1\n" in proc.stderr
    assert "xcb-cursor0 or libxcb-cursor0 is needed" not in proc.stderr   # Qt's one-name line is replaced
