"""(a) The statistics mechanism: a noise-gated EMA of the content's relu4_1 mean and std over time."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class StatSmoother:
    """Noise-gated EMA over time of the content's relu4_1 per-channel mean and std (fp32, on their
    device; no host synchronisation, so it does not stall a GPU pipeline).

    Per frame, d = mean over channels of (|m - m_avg| + |s - s_avg|) / (2 s_avg), the change
    relative to the running average, and the momentum is k = momentum * exp(-(d / noise)^2), so
    noise is averaged and motion followed (docs/temporal.md). noise = 0 gives a plain EMA.
    """

    def __init__(self, momentum: float, noise: float):
        self.momentum = momentum
        self.noise = noise
        self.mean: torch.Tensor | None = None  # C (one frame's worth), the running state
        self.std: torch.Tensor | None = None

    def reset(self) -> None:
        self.mean = self.std = None

    @torch.inference_mode()
    def update(self, mean: torch.Tensor, std: torch.Tensor,
               cuts: Sequence[bool] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """N x C measured stats of N consecutive frames -> N x C smoothed (sequentially over N).

        A True in `cuts` restarts the average at that frame.
        """
        out_m, out_s = [], []
        for i in range(mean.shape[0]):
            m, s = mean[i].float(), std[i].float()
            if self.mean is None or self.mean.shape != m.shape or self.mean.device != m.device or \
                    (cuts is not None and cuts[i]):
                self.mean, self.std = m, s
            else:
                k: torch.Tensor | float = self.momentum
                if self.noise > 0:
                    d = ((m - self.mean).abs() + (s - self.std).abs()).div_(self.std.clamp_min(1e-6)).mean() * 0.5
                    k = torch.exp(-(d / self.noise) ** 2) * self.momentum
                self.mean = torch.lerp(m, self.mean, k)
                self.std = torch.lerp(s, self.std, k)
            out_m.append(self.mean)
            out_s.append(self.std)
        return torch.stack(out_m), torch.stack(out_s)
