"""The element-wise steps of the CPU flow blend, fused into single passes over the pixels (numba).

The blend (flow.FlowBlender, formulas in docs/temporal.md) is a dozen element-wise steps between a few
resamplings and blurs. OpenCV does the resampling (`remap`, `resize`) and the Gaussian blurs, which it
vectorises well; as whole-image OpenCV calls, though, each element-wise step reads and writes the
640x360 frame again, and those passes were most of the time (0.3-0.5 ms each on one core). Each kernel
here is one run of such steps, in one loop:

- `difference`: d = warped - current and the block sums of d (the coarse term is a local mean of d,
  taken on the block means); `warped` is the 4-channel float state (BGR and an unused fourth
  channel: OpenCV's float `remap` vectorises 4 channels and not 3, 1.5 against 3.4 ms at 640x360);
- `blend_fine`: y = current + mask * (b * d + k * coarse);
- `detail_energies`: the block sums of the fine detail's energy, of y and of the current frame;
- `restore_detail`: y = low + gain * (y - low), clipped: the 4-channel float state and the uint8 output.

Block sums are over `down` x `down` blocks of the image padded by replication to a multiple of `down`,
as filters.local_mean_small_numpy reduces it: the rows of a block row are added column by column first
(a loop that vectorises), then each block's columns once per block row. The loops run over each row's
(or the image's) flat values with the three channels written out, which lets them vectorise: the
arguments must be C-contiguous. The kernels release the GIL: the blend runs on the
smoother thread beside the network. They are compiled on first use and cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True, fastmath=True, boundscheck=False)


@njit(**_JIT)
def _add_padding(sums, last_row, last_col, down, pad_h, pad_w):
    """Block sums over an image padded by replication: the padding's rows repeat `last_row` (W x C),
    its columns the last column `last_col` (H x C), its corner their shared pixel."""
    h, w = last_col.shape[0], last_row.shape[0]
    for yy in range(h, h + pad_h):
        for x in range(w):
            for c in range(sums.shape[2]):
                sums[yy // down, x // down, c] += last_row[x, c]
    for y in range(h + pad_h):
        for xx in range(w, w + pad_w):
            for c in range(sums.shape[2]):
                sums[y // down, xx // down, c] += last_col[min(y, h - 1), c]


@njit(**_JIT)
def _block_sums_of_row(row_sums, values, down):
    """Adds the W x C row `values` into its block row `row_sums` (W/down x C), block by block: no
    division per pixel, which kept the loop from vectorising."""
    w, channels = values.shape
    blocks = w // down
    for bx in range(blocks):
        for c in range(channels):
            acc = np.float32(0.0)
            for k in range(down):
                acc += values[bx * down + k, c]
            row_sums[bx, c] += acc
    for x in range(blocks * down, w):
        for c in range(channels):
            row_sums[x // down, c] += values[x, c]


@njit(**_JIT)
def difference(warped, cur, down, pad_h, pad_w):
    """-> d = warped[..., :3] - cur (H x W x 3 float32; warped H x W x 4 float32, cur uint8), the block
    sums of d."""
    h, w = cur.shape[0], cur.shape[1]
    d = np.empty((h, w, 3), np.float32)
    sums = np.zeros(((h + pad_h) // down, (w + pad_w) // down, 3), np.float32)
    acc = np.zeros(3 * w, np.float32)  # this block row's column sums so far
    for y in range(h):
        wr, cr, dr = warped[y].reshape(-1), cur[y].reshape(-1), d[y].reshape(-1)
        for x in range(w):
            for c in range(3):
                i = 3 * x + c
                v = wr[4 * x + c] - np.float32(cr[i])
                dr[i] = v
                acc[i] += v
        if (y + 1) % down == 0 or y == h - 1:
            _block_sums_of_row(sums[y // down], acc.reshape(w, 3), down)
            acc[:] = 0
    if pad_h or pad_w:
        _add_padding(sums, d[h - 1], d[:, w - 1], down, pad_h, pad_w)
    return d, sums


@njit(**_JIT)
def blend_fine(cur, d, mask, coarse, b, k):
    """y = cur + mask * (b * d + k * coarse); cur uint8, mask H x W, the rest H x W x 3 float32."""
    h, w = cur.shape[0], cur.shape[1]
    y_img = np.empty((h, w, 3), np.float32)
    cf, df, mf, qf, of = cur.reshape(-1), d.reshape(-1), mask.reshape(-1), coarse.reshape(-1), y_img.reshape(-1)
    for p in range(h * w):
        m, i = mf[p], 3 * p
        of[i] = np.float32(cf[i]) + m * (b * df[i] + k * qf[i])
        of[i + 1] = np.float32(cf[i + 1]) + m * (b * df[i + 1] + k * qf[i + 1])
        of[i + 2] = np.float32(cf[i + 2]) + m * (b * df[i + 2] + k * qf[i + 2])
    return y_img


@njit(**_JIT)
def detail_energies(y_img, y_low, cur, cur_low, down, pad_h, pad_w):
    """The block sums of the channel-summed squared fine detail: [..., 0] of y_img - y_low,
    [..., 1] of cur - cur_low (cur uint8)."""
    h, w = y_img.shape[0], y_img.shape[1]
    sums = np.zeros(((h + pad_h) // down, (w + pad_w) // down, 2), np.float32)
    energy = np.empty((w, 2), np.float32)  # one row's
    ef = energy.reshape(-1)
    last_col = np.empty((h, 2), np.float32)
    acc = np.zeros(2 * w, np.float32)  # this block row's column sums so far
    for y in range(h):
        yr, lr, cr, clr = y_img[y].reshape(-1), y_low[y].reshape(-1), cur[y].reshape(-1), cur_low[y].reshape(-1)
        for x in range(w):
            i = 3 * x
            a0, a1, a2 = yr[i] - lr[i], yr[i + 1] - lr[i + 1], yr[i + 2] - lr[i + 2]
            e0 = np.float32(cr[i]) - clr[i]
            e1 = np.float32(cr[i + 1]) - clr[i + 1]
            e2 = np.float32(cr[i + 2]) - clr[i + 2]
            ef[2 * x] = a0 * a0 + a1 * a1 + a2 * a2
            ef[2 * x + 1] = e0 * e0 + e1 * e1 + e2 * e2
        for i in range(2 * w):
            acc[i] += ef[i]
        if (y + 1) % down == 0 or y == h - 1:
            _block_sums_of_row(sums[y // down], acc.reshape(w, 2), down)
            acc[:] = 0
        last_col[y, 0], last_col[y, 1] = energy[w - 1, 0], energy[w - 1, 1]
    if pad_h or pad_w:
        _add_padding(sums, energy, last_col, down, pad_h, pad_w)  # `energy` holds the last row now
    return sums


@njit(**_JIT)
def restore_detail(y_img, y_low, mask, gain):
    """y_low + g * (y_img - y_low), g = 1 + (gain - 1) * mask (both H x W), clipped to [0, 255]:
    -> the float32 state (H x W x 4, the fourth channel 0) and the rounded uint8 output."""
    h, w = y_img.shape[0], y_img.shape[1]
    state = np.empty((h, w, 4), np.float32)
    out = np.empty((h, w, 3), np.uint8)
    yf, lf, mf, gf = y_img.reshape(-1), y_low.reshape(-1), mask.reshape(-1), gain.reshape(-1)
    sf, of = state.reshape(-1), out.reshape(-1)
    lo, hi, half = np.float32(0.0), np.float32(255.0), np.float32(0.5)
    for p in range(h * w):
        g = np.float32(1.0) + (gf[p] - np.float32(1.0)) * mf[p]
        for c in range(3):
            i = 3 * p + c
            v = min(max(lf[i] + g * (yf[i] - lf[i]), lo), hi)
            sf[4 * p + c] = v
            of[i] = np.uint8(v + half)
        sf[4 * p + 3] = np.float32(0.0)
    return state, out
