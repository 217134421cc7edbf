"""Tests of npcaffe/winograd_jit.py: the compiled F(4x4, 3x3) transforms against the NumPy
path of npcaffe.winograd (their reference), band by band, on awkward geometries."""
import os
import subprocess
import sys

import numpy as np
import pytest

from npcaffe import winograd, winograd_jit

CASES = [  # (channels, outputs, H, W, pad, band tile rows)
    (3, 4, 6, 6, (1, 1), None),        # 6x6 outputs: one whole tile and a ragged one
    (5, 7, 13, 17, (1, 1), 1),         # ragged last tile row and column, one-row bands
    (2, 3, 9, 11, (1, 0), 2),          # different pads: 9x9 outputs, bands of 2
    (4, 2, 5, 5, (0, 0), None),        # no pad: 3x3 outputs in one partial tile
    (6, 5, 3, 22, (2, 2), 1),          # pad 2: outputs larger than the input
]


def band_outputs(img, u, bias, pad, nt, compiled, monkeypatch):
    """The whole output of conv_band run in bands of ``nt`` tile rows, by either path."""
    monkeypatch.setattr(winograd_jit, '_enabled', compiled)
    assert (winograd.compiled_kernels(winograd.F4) is not None) == compiled
    c, h, w = img.shape
    mo = u.shape[1]
    out_hw = (h + 2 * pad[0] - 2, w + 2 * pad[1] - 2)
    th, tw = winograd.tiles(out_hw, winograd.F4)
    nt = nt or th
    out = np.full((mo,) + out_hw, np.nan, img.dtype)
    work = [np.empty(n, img.dtype) for n in
            winograd.band_scratch_sizes(c, mo, nt, tw, winograd.F4)]
    for t0 in range(0, th, nt):
        winograd.conv_band(img, pad, u, out, t0, min(nt, th - t0), *work, winograd.F4,
                           bias=bias)
    return out


@pytest.mark.parametrize('dtype, bound', [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize('with_bias', [True, False])
@pytest.mark.parametrize('case', CASES)
def test_compiled_transforms_match_the_numpy_path(case, with_bias, dtype, bound, monkeypatch):
    """Every output written (none left NaN) and within ``bound`` of the largest output: the
    same arithmetic in another order."""
    c, mo, h, w, pad, nt = case
    rng = np.random.default_rng(sum(case[:4]))
    img = rng.standard_normal((c, h, w)).astype(dtype)
    u = winograd.transform_weights(rng.standard_normal((mo, c, 3, 3)).astype(dtype),
                                   winograd.F4)
    bias = rng.standard_normal(mo).astype(dtype) if with_bias else None
    reference = band_outputs(img, u, bias, pad, nt, False, monkeypatch)
    compiled = band_outputs(img, u, bias, pad, nt, True, monkeypatch)
    assert not np.isnan(compiled).any()
    assert compiled.dtype == dtype
    error = np.abs(compiled - reference).max() / np.abs(reference).max()
    assert error <= bound


def test_compiled_band_needs_less_scratch(monkeypatch):
    """The compiled path has no padded rows nor second input array to keep."""
    monkeypatch.setattr(winograd_jit, '_enabled', True)
    fused = winograd.band_scratch_sizes(64, 64, 2, 175, winograd.F4)
    monkeypatch.setattr(winograd_jit, '_enabled', False)
    numpy_path = winograd.band_scratch_sizes(64, 64, 2, 175, winograd.F4)
    assert fused[0] == fused[2] == 0 and fused[1] == numpy_path[1]
    assert sum(fused) < 0.6 * sum(numpy_path)


def test_turned_off_by_the_environment():
    """NPCAFFE_JIT=0 leaves Winograd on the NumPy path (a fresh interpreter reads it)."""
    code = "from npcaffe import winograd_jit; print(winograd_jit.kernels() is None)"
    env = dict(os.environ, NPCAFFE_JIT='0')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == 'True'


def test_f2_has_no_compiled_transforms(monkeypatch):
    monkeypatch.setattr(winograd_jit, '_enabled', True)
    assert winograd.compiled_kernels(winograd.F2) is None
    assert winograd.compiled_kernels(winograd.F4) is not None
