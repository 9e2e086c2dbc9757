"""Shared test set-up: no display needed, the checkout importable, tiny random pairs."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# `analyze --precision auto` (the default) may take bf16 on a CPU with AMX or a GPU; the tests
# compare with float32 references, so they pin fp32 (FAIG_GUI_PRECISION, the default's default);
# tests of auto ask for it by name
os.environ.setdefault("FAIG_GUI_PRECISION", "fp32")

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
for p in (str(ROOT), str(TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)

import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny test models gain nothing from intra-op threads, and on a shared 2-core machine the
# threads' spinning costs more than the work (measured: test_attribution 62 s with 2, 8 s with 1).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The same for every test, whatever an earlier one set on this thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory):
    """Stored calibrations go to a folder of this run, never to the user's cache (and no test
    sees one left by an earlier run)."""
    old = os.environ.get("FAIG_GUI_CACHE_DIR")
    os.environ["FAIG_GUI_CACHE_DIR"] = str(tmp_path_factory.mktemp("faig-gui-cache"))
    yield
    if old is None:
        os.environ.pop("FAIG_GUI_CACHE_DIR", None)
    else:
        os.environ["FAIG_GUI_CACHE_DIR"] = old


@pytest.fixture(scope="session", autouse=True)
def _small_calibration_content(tmp_path_factory):
    """Three of the predictor's bundled calibration crops (a tree, text, smooth gradients) instead
    of all 26: a test's calibration in seconds (FAIG_GUI_CALIBRATION_DIR; the full set is
    measured by scripts/eval_prediction.py)."""
    import shutil
    folder = tmp_path_factory.mktemp("calibration-content")
    for name in ("rocket_1.png", "page_0.png", "colorwheel_0.png"):
        shutil.copy(ROOT / "resources" / "calibration" / name, folder / name)
    old = os.environ.get("FAIG_GUI_CALIBRATION_DIR")
    os.environ["FAIG_GUI_CALIBRATION_DIR"] = str(folder)
    yield
    if old is None:
        os.environ.pop("FAIG_GUI_CALIBRATION_DIR", None)
    else:
        os.environ["FAIG_GUI_CALIBRATION_DIR"] = old


@pytest.fixture
def registry():
    from faig_gui.core.registry import default_registry
    return default_registry()
