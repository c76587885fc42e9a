"""Calibration of the Wasserstein significance floor (custintel.drift.wasserstein_floor): for feature
shapes like the generator's (normal, counts, heavy-tailed spend, half-zero spend) and sample sizes
per side, the floor at alpha 0.01 and 0.0001 from three reference samples, each with the share of
independent no-drift pairs (fresh samples of the same distribution, the statistic as the drift test
computes it) at or above it. A calibrated floor shows shares near alpha; the bare 0.1 threshold's
share is printed beside it.

    PYTHONPATH=. python benchmarks/wasserstein_floor.py [--pairs 1000] [--sizes 300 2000 6000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from custintel.drift import wasserstein_floor, wasserstein_norm

SHAPES = {
    "normal": lambda rng, n: rng.normal(0, 1, n),
    "poisson(2) counts": lambda rng, n: rng.poisson(2, n).astype(float),
    "lognormal(4, 1.5)": lambda rng, n: rng.lognormal(4, 1.5, n),
    "half zeros + lognormal": lambda rng, n: np.where(rng.random(n) < 0.5, 0, rng.lognormal(4, 1.5, n)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1000, help="no-drift pairs per shape and size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 2000, 6000])
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    print("shape, rows a side: bare 0.1 threshold's false-alarm share | per reference sample: "
          "floor(0.01)/share floor(0.0001)/share")
    for name, draw in SHAPES.items():
        for n in args.sizes:
            null = np.array([wasserstein_norm(draw(rng, n), draw(rng, n)) for _ in range(args.pairs)])
            cells = []
            for _ in range(3):
                reference = draw(rng, n)
                floors = [wasserstein_floor(reference, n, alpha) for alpha in (0.01, 0.0001)]
                cells.append(" ".join(f"{f:.3f}/{np.mean(null >= f):.4f}" for f in floors))
            print(f"{name}, {n}: bare 0.1 {np.mean(null >= 0.1):.3f} | " + " | ".join(cells))
    for name, draw in SHAPES.items():
        reference = draw(rng, 20000)
        start = time.perf_counter()
        floor = wasserstein_floor(reference, 20000, 0.0001)
        ms = 1000 * (time.perf_counter() - start)
        print(f"{name}, 20000 a side: floor(0.0001) {floor:.3f} in {ms:.0f} ms")


if __name__ == "__main__":
    main()
