"""Degradation prediction from the target's own discriminative filters (docs/method.md, "Degradation prediction").

No classifier is trained: for each analysed degradation d the predictor measures evidence that
comes from d's top-k % filters (:mod:`.evidence`), compares it with the same evidence measured on
the analysis images' clean and degraded versions (:mod:`.calibration`), keeps that calibration in
memory and on disk (:mod:`.cache`) and judges images with it (:mod:`.predictor`); a found JPEG's
quality is read from the image by re-compression (:mod:`.jpeg_quality`). The method and how it
came to be: docs/prediction.md.
"""
from faig_gui.core.prediction.cache import (CACHE_FORMAT, CACHE_KEEP, calibration_cache_dir, read_calibration,
                                            write_calibration)
from faig_gui.core.prediction.calibration import (INTERVAL_COVERAGE, UNSURE_HIGH, UNSURE_LOW, Calibration, Sample, Verdict,
                                                  strength_params)
from faig_gui.core.prediction.config import Prediction, PredictorConfig
from faig_gui.core.prediction.evidence import (CLASSICAL, CLEAN, EVIDENCE, PROBE_STEP, REFERENCE_SEED,
                                               SELF_REFERENCED, EvidenceModel, _LayerProbe, classical_estimates,
                                               combine, tiles)
from faig_gui.core.prediction.sampling import calibrate, calibration_plan
from faig_gui.core.prediction.logistic import reliability
from faig_gui.core.prediction.predictor import _CALIBRATIONS, Predictor, make_prediction

__all__ = ["CLASSICAL", "INTERVAL_COVERAGE", "UNSURE_HIGH", "UNSURE_LOW", "Verdict", "classical_estimates", "make_prediction",
           "reliability", "CACHE_FORMAT", "CACHE_KEEP", "CLEAN", "EVIDENCE", "PROBE_STEP", "REFERENCE_SEED", "SELF_REFERENCED",
           "Calibration", "EvidenceModel", "Prediction", "Predictor", "PredictorConfig", "Sample", "calibrate",
           "calibration_cache_dir", "calibration_plan", "combine", "read_calibration", "strength_params", "tiles",
           "write_calibration", "_CALIBRATIONS", "_LayerProbe"]
