"""Every built-in family's checkpoint is claimed by exactly one plugin, its own: detection reads
key names and shapes, and no plugin may take another family's weights (the registry asks them
in file-name order and takes the first yes, so an over-eager detect would hide a family)."""
from __future__ import annotations

import pytest

from faig_gui.core.registry import default_registry

TINY = {
    "msrresnet": [{"num_feat": 4, "num_block": 2, "scale": s} for s in (2, 3, 4)],
    "srcnn_style": [{"scale": s, "widths": (4, 5)} for s in (2, 3, 4)],
    "edsr": [{"num_feat": 4, "num_block": 2, "scale": s, "layout": layout}
             for s in (2, 3, 4) for layout in ("basicsr", "original")],
    "rcan": [{"num_feat": 4, "num_group": 2, "num_block": 2, "squeeze_factor": 2, "scale": s, "layout": layout}
             for s in (2, 3, 4) for layout in ("basicsr", "original")]
            + [{"num_feat": 4, "num_group": 1, "num_block": 2, "squeeze_factor": 2, "scale": 2, "layout": "original",
                "mean_shift": "div2k"}],
    "srvgg": [{"num_feat": 4, "num_conv": 2, "scale": s, "act_type": act} for s in (2, 3, 4)
              for act in ("prelu", "relu")],
    # written by another plugin's author; its default layout, when it is installed
    "rrdbnet": [{"num_feat": 4, "num_block": 1, "num_grow_ch": 2, "scale": s} for s in (2, 4)],
}
CASES = [(arch, hp) for arch, hps in TINY.items() for hp in hps]


@pytest.mark.parametrize("arch,hp", CASES, ids=[f"{a}-{'-'.join(str(v) for v in h.values())}" for a, h in CASES])
def test_each_checkpoint_is_claimed_by_its_own_plugin_only(arch, hp):
    reg = default_registry()
    if arch not in reg.names():
        pytest.skip(f"{arch} plugin not installed")
    sd = reg.get(arch).new_state_dict(**hp)
    claims = [a.name for a in reg.architectures if a.detect(sd)]
    assert claims == [arch]
    assert reg.model_from_state_dict(sd).hyperparameters["scale"] == hp["scale"]
