"""The layering contract of DESIGN.md: core/ never imports Qt, and the headless half of the
command runs without PySide6 being imported at all."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "faig_gui" / "core"
QT_ROOTS = {"PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "qtpy", "pyqtgraph", "qasync", "superqt"}


def _imported_roots(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call):  # importlib.import_module("PySide6...") / __import__("...")
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def test_no_core_module_imports_qt():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    offending = []
    for f in files:
        for line, root in _imported_roots(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            if root in QT_ROOTS:
                offending.append(f"{f.relative_to(ROOT)}:{line} imports {root}")
    assert not offending, "\n".join(offending)


def test_no_core_module_imports_the_app_layer():
    offending = []
    for f in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith(("faig_gui.app", "faig_gui.commands", "faig_gui.cli")):
                    offending.append(f"{f.relative_to(ROOT)}:{node.lineno} imports {node.module}")
            if isinstance(node, ast.ImportFrom) and node.level and node.module and node.module.startswith("app"):
                offending.append(f"{f.relative_to(ROOT)}:{node.lineno} imports .{node.module}")
    assert not offending, "\n".join(offending)


def test_headless_use_never_imports_pyside6(tmp_path):
    script = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        import faig_gui.core
        for info in pkgutil.iter_modules(faig_gui.core.__path__):
            importlib.import_module("faig_gui.core." + info.name)
        import faig_gui.cli
        import faig_gui.commands
        from faig_gui.cli import build_parser, main
        build_parser()  # imports every headless command module
        assert "PySide6" not in sys.modules, "importing the core or the CLI imported PySide6"
        import numpy as np, cv2
        hr = {str(tmp_path / 'hr')!r}
        import os; os.makedirs(hr)
        cv2.imwrite(os.path.join(hr, "x.png"), (np.random.default_rng(0).random((16, 16, 3)) * 255).astype("uint8"))
        rc = main(["degrade", "--hr", hr, "--out", {str(tmp_path / 'out')!r}])
        assert rc == 0, rc
        # a command that loads checkpoints through the plugin registry as well
        from faig_gui.core.checkpoint import save_checkpoint
        from faig_gui.core.registry import default_registry
        sd = default_registry().get("msrresnet").new_state_dict(num_feat=4, num_block=1, scale=2)
        save_checkpoint({str(tmp_path / 'b.pth')!r}, sd)
        save_checkpoint({str(tmp_path / 't.pth')!r}, {{k: v + 0.01 for k, v in sd.items()}})
        rc = main(["analyze", "--baseline", {str(tmp_path / 'b.pth')!r}, "--target", {str(tmp_path / 't.pth')!r},
                   "--method", "abs", "--out", {str(tmp_path / 'abs')!r}])
        assert rc == 0, rc
        bad = sorted(m for m in sys.modules if m.split(".")[0] in {sorted(QT_ROOTS)!r})
        assert not bad, bad
        print("OK", len(sys.modules))
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1].startswith("OK")
    assert (tmp_path / "out" / "GT" / "x.png").is_file()
    assert (tmp_path / "abs" / "scores.npz").is_file()
