"""The grid (checkerboard) measure of benchmarks/quality.py on pictures made in the test."""

import numpy as np
import pytest

from benchmarks.metrics import grid_energy


def _flat_with_noise(h=96, w=128, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.full((h, w, 3), 120.0)
    base += np.linspace(0, 30, w)[None, :, None]  # a gentle gradient: still flat
    return np.clip(base + rng.normal(0, 2.0, base.shape), 0, 255).astype(np.uint8)


def test_no_grid_scores_about_one_and_a_grid_scores_far_more():
    content = _flat_with_noise()
    clean = grid_energy(_flat_with_noise(seed=1), content)
    assert clean["tiles"] == 12
    assert 0.5 < clean["grid_energy"] < 2.5
    gridded = _flat_with_noise(seed=1).astype(np.float64)
    yy, xx = np.mgrid[: gridded.shape[0], : gridded.shape[1]]
    gridded += 6.0 * (((yy % 4) < 2) ^ ((xx % 4) < 2))[..., None]  # a 4 px checkerboard
    result = grid_energy(np.clip(gridded, 0, 255).astype(np.uint8), content)
    assert result["grid_energy"] > 3 * clean["grid_energy"]
    assert result["per_period"][4] > 8 * clean["per_period"][4]
    assert result["per_period"][8] < 2 * clean["per_period"][8]  # no 8 px grid was drawn


def test_only_flat_tiles_of_the_content_count():
    busy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert grid_energy(busy, busy)["tiles"] == 0
    with pytest.raises(ValueError):
        grid_energy(busy, busy[:32])
