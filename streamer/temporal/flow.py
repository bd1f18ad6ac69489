"""(b) The flow mechanism: the previous output, warped along the input's optical flow, blended into the
current one where the flow is reliable, then the fine detail restored to the current local contrast.

The formulas and the measurements behind them: docs/temporal.md. Two paths give the same result:
uint8 BGR images with OpenCV (CPU), and 3 x H x W RGB tensors on the stylized frames' device.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from streamer.temporal import fused
from streamer.temporal.filters import (
    CONTRAST_DOWN,
    blur_numpy,
    blur_to_float,
    blur_torch,
    gray,
    local_mean_small_torch,
    local_mean_torch,
    padding,
    pixel_grid,
    pixel_grid_xy,
    upsample_numpy,
    upsample_torch,
    warp_numpy,
)
from streamer.temporal.settings import TemporalSettings

DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
COARSE_SIGMA = 4.0  # px of the output: structure above this scale is blended with flow_blend_coarse
MAX_GAIN = 3.0      # the contrast restoration never amplifies detail more than this


def _frame_size(img: np.ndarray | torch.Tensor) -> tuple[int, int]:
    """H, W of an H x W x C array or a C x H x W tensor."""
    return tuple(img.shape[-2:]) if isinstance(img, torch.Tensor) else img.shape[:2]


@dataclass
class FlowEstimate:
    """Backward flow (current -> previous) and the reliability mask, at thumbnail resolution."""

    flow: np.ndarray   # h x w x 2, in thumbnail pixels
    mask: np.ndarray   # h x w float32 in [0, 1]: 1 = blend, 0 = keep the current output
    device: torch.Tensor | None = None  # 3 x h x w (flow, mask) already on the device, if uploaded


class FlowBlender:
    """Blends the warped previous output into the current one where the input flow is reliable,
    then restores the fine detail's local contrast (see the module docstring). Configured by
    TemporalSettings (its flow_* keys, detail_sigma, contrast_sigma, photo_threshold)."""

    def __init__(self, settings: TemporalSettings | None = None):
        s = settings or TemporalSettings()
        self.blend = s.flow_blend
        self.blend_coarse = s.flow_blend_coarse
        self.detail_sigma = s.detail_sigma
        self.contrast_sigma = s.contrast_sigma
        self.flow_size = s.flow_size
        self.photo_threshold = s.photo_threshold
        self.fb_tolerance = s.flow_tolerance  # Ruder et al.'s constant term, in squared *thumbnail* pixels
        self.dis = cv2.DISOpticalFlow_create(DIS_PRESETS[s.flow_preset])
        self._prev_small: np.ndarray | None = None
        self._prev_out: np.ndarray | torch.Tensor | None = None  # float32: 0..255 H x W x 4, or 0..1 3 x H x W
        self.last_mask_mean = 0.0  # share of the frame that was blended (for the HUD / benchmark)
        self._grid_key: tuple | None = None  # the device path's sampling grid, per frame size
        self._grid = self._grid_scale = None

    @property
    def active(self) -> bool:
        return max(self.blend, self.blend_coarse) > 0

    def reset(self) -> None:
        self._prev_small = None
        self._prev_out = None

    @property
    def previous_thumbnail(self) -> np.ndarray | None:
        """The thumbnail of the frame blended last (an estimate is only valid from that one)."""
        return self._prev_small

    def estimate(self, prev_small: np.ndarray, cur_small: np.ndarray) -> FlowEstimate:
        """Flow from the current to the previous thumbnail, and where it can be trusted."""
        prev_gray, cur_gray = gray(prev_small), gray(cur_small)
        flow_b = self.dis.calc(cur_gray, prev_gray, None)  # cur(x) ~ prev(x + flow_b(x))
        flow_f = self.dis.calc(prev_gray, cur_gray, None)
        h, w = cur_gray.shape
        gx, gy = pixel_grid(h, w)
        bu, bv = cv2.split(flow_b)
        f_at = warp_numpy(flow_f, flow_b)
        fu, fv = cv2.split(f_at)
        b2 = bu * bu + bv * bv
        # forward-backward consistency (Ruder et al. 2016, eq. 3-4); numpy reduces over a last axis
        # of 2 slowly, so the channels are handled one by one
        ok = (fu + bu) ** 2 + (fv + bv) ** 2 <= 0.01 * (fu * fu + fv * fv + b2) + self.fb_tolerance
        # motion boundaries; Sobel ksize=1 is a central difference without the 1/2, hence the 0.25
        grad2 = sum(cv2.Sobel(c, cv2.CV_32F, dx, 1 - dx, ksize=1) ** 2 for c in (bu, bv) for dx in (0, 1))
        ok &= grad2 * 0.25 <= 0.01 * b2 + 0.002
        # the flow must explain the input: catches what appears without moving (no flow sees it)
        # (in colour, averaged over 5 x 5: a patch of new content rarely matches the old one by chance)
        diff = cv2.absdiff(warp_numpy(prev_small, flow_b), cur_small)
        if diff.ndim == 3:
            diff = cv2.transform(diff, np.full((1, 3), 1 / 3, np.float32))
        ok &= cv2.blur(diff.astype(np.float32), (5, 5)) <= self.photo_threshold * 255.0
        # samples from outside the previous frame are disocclusions at the border
        sx, sy = gx + bu, gy + bv
        ok &= (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
        # soften: shrink the trusted area by a pixel, then feather the edge
        mask = cv2.erode(ok.astype(np.float32), np.ones((3, 3), np.uint8))
        mask = cv2.GaussianBlur(mask, (5, 5), 1.0)
        return FlowEstimate(flow_b, mask)

    def __call__(self, cur_small: np.ndarray, stylized: np.ndarray | torch.Tensor, cut: bool = False,
                 est: FlowEstimate | None = None) -> np.ndarray | torch.Tensor:
        """Blend for the next frame: its input thumbnail (`thumbnail()`) and its stylized output
        (uint8 H x W x 3 BGR, or a 3 x H x W RGB tensor in [0, 1]). `est`: the flow from the
        previous frame's thumbnail to this one, if already computed."""
        prev_small, prev_out = self._prev_small, self._prev_out
        out, state = stylized, None
        same = (prev_out is not None and prev_small is not None and not cut
                and prev_small.shape == cur_small.shape and isinstance(prev_out, torch.Tensor) ==
                isinstance(stylized, torch.Tensor) and _frame_size(prev_out) == _frame_size(stylized)
                and (not isinstance(stylized, torch.Tensor) or prev_out.device == stylized.device))
        if same and self.active:
            if est is None:
                est = self.estimate(prev_small, cur_small)
            self.last_mask_mean = float(est.mask.mean())
            if isinstance(stylized, torch.Tensor):
                out, state = self._blend_torch(est, prev_out, stylized)
            else:
                out, state = self._blend_numpy(est, prev_out, np.ascontiguousarray(stylized))  # fused's loops
        else:
            self.last_mask_mean = 0.0
        self._prev_small = cur_small
        # keep the blended output (in float: no rounding builds up): the recursion is what makes the
        # filter strong (an IIR filter)
        if state is None:  # a copy: the caller owns `stylized`
            if isinstance(stylized, torch.Tensor):
                state = stylized.to(torch.float32, copy=True)
            else:  # BGR and a zero fourth channel, as fused.restore_detail writes it
                state = np.zeros((*stylized.shape[:2], 4), np.float32)
                state[..., :3] = stylized
        self._prev_out = state
        return out

    def _blend_numpy(self, est: FlowEstimate, prev: np.ndarray, cur_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # OpenCV resamples and blurs; each run of element-wise steps between those is one pass over the
        # pixels (streamer.temporal.fused). What is smooth (the coarse term, the local contrast and so
        # the gain) is computed on the CONTRAST_DOWN block means, as local_mean_small_numpy does.
        h, w = cur_u8.shape[:2]
        th, tw = est.flow.shape[:2]
        ph, pw = padding(h, w)
        per_block = 1.0 / CONTRAST_DOWN ** 2
        flow = cv2.resize(cv2.multiply(est.flow, (w / tw, h / th, 0, 0)), (w, h), interpolation=cv2.INTER_LINEAR)
        warped = cv2.remap(prev, cv2.add(flow, pixel_grid_xy(h, w)), None, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        mask = cv2.resize(est.mask, (w, h), interpolation=cv2.INTER_LINEAR)
        d, sums = fused.difference(warped, cur_u8, CONTRAST_DOWN, ph, pw)
        coarse = upsample_numpy(blur_numpy(sums * per_block, COARSE_SIGMA / CONTRAST_DOWN), h, w)  # local mean of d
        b, k = np.float32(self.blend), np.float32(self.blend_coarse - self.blend)
        y = fused.blend_fine(cur_u8, d, mask, coarse, b, k)
        if self.detail_sigma > 0:
            y_low, cur_low = blur_numpy(y, self.detail_sigma), blur_to_float(cur_u8, self.detail_sigma)
            energy = fused.detail_energies(y, y_low, cur_u8, cur_low, CONTRAST_DOWN, ph, pw)
            energy = blur_numpy(energy * per_block, self.contrast_sigma / CONTRAST_DOWN)
            gain = np.sqrt((energy[..., 1] + 1.0) / (energy[..., 0] + 1.0)).clip(1.0, MAX_GAIN)  # smooth: at low res
            gain = upsample_numpy(gain, h, w)
        else:  # no detail restoration: only the clipping and rounding remain
            y_low, gain = y, mask
        state, out = fused.restore_detail(y, y_low, mask, gain)
        return out, state

    def _blend_torch(self, est: FlowEstimate, prev: torch.Tensor, cur_in: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = cur_in.shape[-2:]
        th, tw = est.flow.shape[:2]
        small = est.device
        if small is None:  # one upload: flow and mask together
            small = torch.from_numpy(np.dstack([est.flow, est.mask])).permute(2, 0, 1)
            small = small.to(cur_in.device, non_blocking=True)
        big = F.interpolate(small.unsqueeze(0), size=(h, w), mode="bilinear", align_corners=False)[0]
        key = (h, w, th, tw, cur_in.device)
        if self._grid_key != key:  # cached on the device: no host round trip per frame
            ys = torch.linspace(-1.0, 1.0, h, device=cur_in.device).view(h, 1).expand(h, w)
            xs = torch.linspace(-1.0, 1.0, w, device=cur_in.device).view(1, w).expand(h, w)
            self._grid = torch.stack((xs, ys), dim=-1)  # align_corners=True coordinates, as warp_torch
            self._grid_scale = torch.tensor([2.0 / max(w - 1, 1) * w / tw, 2.0 / max(h - 1, 1) * h / th],
                                            device=cur_in.device)
            self._grid_key = key
        grid = torch.addcmul(self._grid, big[:2].permute(1, 2, 0), self._grid_scale)  # thumbnail px -> grid units
        cur = cur_in.float()
        warped = F.grid_sample(prev.unsqueeze(0), grid.unsqueeze(0), mode="bilinear", padding_mode="border",
                               align_corners=True)[0]
        mask = big[2:3]
        d = warped - cur
        y = torch.addcmul(cur, d, mask, value=self.blend)
        if self.blend_coarse != self.blend:
            y.addcmul_(local_mean_torch(d.unsqueeze(0), COARSE_SIGMA)[0], mask, value=self.blend_coarse - self.blend)
        if self.detail_sigma > 0:
            low = blur_torch(torch.stack((y, cur)), self.detail_sigma)  # 2 x 3 x H x W, one pass for both
            detail = torch.stack((y, cur)) - low
            energy = local_mean_small_torch(detail.square().sum(1).unsqueeze(0), self.contrast_sigma)[0]
            eps = 1.0 / 255 ** 2
            gain = ((energy[1] + eps) / (energy[0] + eps)).sqrt_().clamp_(1.0, MAX_GAIN)
            gain = upsample_torch(gain[None, None], h, w)[0, 0]
            y = torch.addcmul(low[0], detail[0], gain.sub_(1.0).mul_(mask[0]).add_(1.0))
        y.clamp_(0, 1)
        return y.to(cur_in.dtype, copy=True), y  # the output is the caller's, the float state ours
