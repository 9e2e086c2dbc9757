#!/usr/bin/env python
"""How well noise-only and blur+noise inputs of each held-out picture can be told apart at all:
an ideal observer that knows each crop's clean amplitude spectrum.

    .venv/bin/python scripts/oracle_blur_under_noise.py [--draws 5] [--unclipped]

For each held-out crop (scripts/eval_prediction.py's, HR 160², x2) the observer is given the
amplitudes |X(k)| of every Fourier bin of every colour channel of the clean LR image and of the
blurred one (blur σ 2 on HR, as docs/method.md degrades), not their phases, and decides between
"noise σ 0.1 on the clean image" and "the same noise on the blurred one" by the likelihood ratio of
the input's amplitudes: with complex Gaussian noise of power N per bin, |Y(k)| given |X(k)| = a is
Rician, log p = log(2r/N) - (r² + a²)/N + log I0(2ar/N), independent across bins (rfft2's
bins, the self-conjugate columns left out). No predictor can beat this observer without knowing
the content better than its spectrum (its phases: the picture itself).

By default the inputs are degraded exactly as the evaluation degrades them, clipped to [0, 1] and
rounded to 8 bits: the observer's Gaussian model is then wrong where the noise is clipped (dark
pictures), which costs it accuracy. ``--unclipped`` adds the model's own noise instead, the bound
under the model. Prints the accuracy per picture (inputs balanced between the two classes).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.special import i0e

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from faig_gui.core.degradations import Degradation, degrade, seeded_generator  # noqa: E402
from eval_prediction import HELDOUT, heldout_crops  # noqa: E402


def amplitudes(img: np.ndarray) -> np.ndarray:
    """|rfft2| of (C,H,W) images over the bins whose conjugates are not also in rfft2's half plane."""
    spectrum = np.fft.rfft2(img, axes=(-2, -1))
    return np.abs(spectrum[..., 1:(img.shape[-1] + 1) // 2])


def rice_loglik(r: np.ndarray, a: np.ndarray, power: float) -> float:
    """Σ log p(r | a) of amplitudes ``r`` given the clean amplitudes ``a`` under complex Gaussian
    noise of power ``power`` per bin (E|n|² = power), without the term in r alone."""
    z = 2.0 * a * r / power
    return float((-(a * a) / power + np.log(i0e(z)) + z).sum())


def observer_says_blur(noisy: np.ndarray, clean: np.ndarray, blurred: np.ndarray, sigma: float) -> bool:
    """The ideal observer's verdict on ``noisy`` (C,H,W): blurred when the blurred image's
    amplitudes explain it better than the clean one's (likelihood ratio above 1)."""
    power = noisy.shape[-2] * noisy.shape[-1] * sigma * sigma   # white noise of variance σ² per pixel
    r = amplitudes(noisy)
    return rice_loglik(r, amplitudes(blurred), power) > rice_loglik(r, amplitudes(clean), power)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--draws", type=int, default=5, help="draws of 4 crops per picture (seeds 1, 7, 13, ...)")
    p.add_argument("--noise-draws", type=int, default=3, help="noise draws per crop and class")
    p.add_argument("--blur-sigma", type=float, default=2.0)
    p.add_argument("--noise-sigma", type=float, default=0.1)
    p.add_argument("--unclipped", action="store_true", help="Gaussian noise without clipping or rounding")
    args = p.parse_args()
    torch.set_num_threads(1)
    s, rng = args.noise_sigma, np.random.default_rng(5)
    right: dict[str, list[bool]] = {name: [] for name in HELDOUT}
    for j in range(args.draws):
        seed = 1 + 6 * j
        crops = heldout_crops(4, 160, seed)
        for n, hr in enumerate(crops):
            picture = HELDOUT[n * len(HELDOUT) // len(crops)]
            clean = degrade(hr, 2, Degradation("clean"))[0].double().numpy()
            blurred = degrade(hr, 2, Degradation("blur", blur_sigma=args.blur_sigma))[0].double().numpy()
            for truth, deg, noiseless in ((False, Degradation("noise", noise_sigma=s), clean),
                                          (True, Degradation("b+n", blur_sigma=args.blur_sigma, noise_sigma=s),
                                           blurred)):
                for k in range(args.noise_draws):
                    if args.unclipped:
                        noisy = noiseless + rng.normal(0.0, s, noiseless.shape)
                    else:
                        noisy = degrade(hr, 2, deg, seeded_generator(seed * 7919 + n * 31 + k + 1))[0].double().numpy()
                    right[picture].append(observer_says_blur(noisy, clean, blurred, s) == truth)
    print(f"ideal observer, noise-only against blur+noise (blur σ {args.blur_sigma:g}, noise σ {s:g}, "
          f"{'unclipped' if args.unclipped else 'as evaluated: clipped, 8-bit'}):")
    for picture, hits in right.items():
        print(f"  {picture:8s} {100 * np.mean(hits):5.1f} % of {len(hits)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
