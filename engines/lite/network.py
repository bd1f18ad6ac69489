"""The lite network: a small content encoder, AdaIN in its own feature space, and a small decoder
conditioned on the style at every layer.

    content (N,3,H,W) RGB [0,1] --LiteEncoder--> (N,C,H/4,W/4) --AdaIN(head target, alpha)-->
        LiteDecoder, each layer's output scaled and shifted per channel by the head (FiLM) --> RGB

No VGG on the per-frame path. The style input is the style code (VGG relu1_1..relu4_1 means and
stds, computed once per style; engines.adain.CODE_LAYERS). A small head (`StyleHead`) maps it to
the mean and std the lite features take in AdaIN, and to a FiLM scale and shift for every decoder
layer, the upsampling and RGB layers included: AdaIN alone moves the statistics of one layer, and a
decoder without style cannot paint strokes (Magenta conditions all its layers the same way).
The FiLM terms are scaled by alpha, so alpha 0 gives the unconditioned decoder's reconstruction.
No normalisation runs per frame inside the decoder: its statistics would flicker, and the temporal
smoother (which averages the AdaIN statistics only) could not calm them.

Upsampling is nearest + 3x3 conv (no transposed convs: they leave checkerboards).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from engines.adain import CODE_CHANNELS, adain, blend_alpha, mean_std


@dataclass(frozen=True)
class LiteShape:
    """Widths of the lite network. Stored in the weights' manifest so a file rebuilds its network."""

    widths: tuple[int, ...] = (24, 64)  # one stride-2 3x3 conv each: H/2, H/4 (the AdaIN space is at H/4)
    features: int = 128   # channels of the AdaIN space
    blocks: int = 2       # depthwise-separable residual blocks on each side of AdaIN
    head_hidden: int = 512
    full_res: int = 16    # channels of the last full-resolution conv

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(self.widths))  # a JSON manifest gives a list

    @property
    def halvings(self) -> int:
        return len(self.widths)

    @property
    def film_channels(self) -> tuple[int, ...]:
        """Channels of each FiLM-conditioned decoder layer, in order: the 1x1 in, the blocks, the
        upsampling convs, the RGB conv."""
        ups = (*reversed(self.widths[:-1]), self.full_res)
        return (self.widths[-1],) * (1 + self.blocks) + ups + (3,)

    def as_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, k // 2, padding_mode="reflect" if k > 1 else "zeros")


class ResidualBlock(nn.Module):
    """Depthwise 3x3 + pointwise, twice, with a skip: cheap spatial context in the AdaIN space.
    Returns the sum before its ReLU, so a FiLM can go in between."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, 1, 1, groups=ch, padding_mode="reflect"), nn.Conv2d(ch, ch, 1), nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, 1, 1, groups=ch, padding_mode="reflect"), nn.Conv2d(ch, ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LiteEncoder(nn.Module):
    def __init__(self, s: LiteShape):
        super().__init__()
        chans = (3, *s.widths)
        self.downs = nn.ModuleList(_conv(a, b, stride=2) for a, b in zip(chans[:-1], chans[1:], strict=True))
        self.blocks = nn.ModuleList(ResidualBlock(s.widths[-1]) for _ in range(s.blocks))
        self.out = _conv(s.widths[-1], s.features, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.downs:
            x = torch.relu(conv(x))
        for block in self.blocks:
            x = torch.relu(block(x))
        return torch.relu(self.out(x))


def film(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x * (1 + scale) + shift, per channel (N x C) or per pixel (N x C x h x w: masks)."""
    if scale.ndim == 2:
        scale, shift = scale[..., None, None], shift[..., None, None]
    return torch.addcmul(shift.to(x.dtype), x, 1 + scale.to(x.dtype))


class LiteDecoder(nn.Module):
    def __init__(self, s: LiteShape):
        super().__init__()
        self.inp = _conv(s.features, s.widths[-1], k=1)
        self.blocks = nn.ModuleList(ResidualBlock(s.widths[-1]) for _ in range(s.blocks))
        chans = (*reversed(s.widths), s.full_res)  # back up through the encoder's widths to full resolution
        self.ups = nn.ModuleList(_conv(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True))
        self.rgb = _conv(s.full_res, 3)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor, films: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """`films`: one (scale, shift) per layer, in LiteShape.film_channels order."""
        f = iter(films)
        x = torch.relu(film(self.inp(x), *next(f)))
        for block in self.blocks:
            x = torch.relu(film(block(x), *next(f)))
        for conv in self.ups:
            x = torch.relu(film(conv(self.up(x)), *next(f)))
        return film(self.rgb(x), *next(f))


class StyleHead(nn.Module):
    """Style code -> the AdaIN target (mean, std) of the lite features, and every decoder layer's FiLM."""

    def __init__(self, s: LiteShape):
        super().__init__()
        self.features = s.features
        self.film_channels = s.film_channels
        self.trunk = nn.Sequential(nn.Linear(2 * CODE_CHANNELS, s.head_hidden), nn.ReLU(inplace=True))
        self.target = nn.Linear(s.head_hidden, 2 * s.features)
        self.film = nn.Linear(s.head_hidden, 2 * sum(s.film_channels))
        nn.init.zeros_(self.film.weight)  # starts as the unconditioned decoder
        nn.init.zeros_(self.film.bias)

    def forward(self, style_mean: torch.Tensor,
                style_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> target mean, target std (N x features each) and the FiLM vector (N x 2*sum(film_channels)), fp32."""
        # log of the std: stds span two orders of magnitude across styles
        code = torch.cat([style_mean.float(), style_std.float().clamp_min(1e-5).log()], dim=1)
        hidden = self.trunk(code.to(self.target.weight.dtype))
        mean, log_std = self.target(hidden).float().chunk(2, dim=1)
        return mean, log_std.exp(), self.film(hidden).float()

    def split(self, films: torch.Tensor, alpha: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The FiLM vector -> (scale, shift) per layer, scaled by alpha (N)."""
        films = films * alpha.reshape(-1, 1).to(films.dtype)
        scales, shifts = films.chunk(2, dim=1)
        return list(zip(scales.split(self.film_channels, dim=1), shifts.split(self.film_channels, dim=1), strict=True))


class LiteGraph(nn.Module):
    """The lite per-frame graph (engines.graph.Graph)."""

    kind = "lite"
    style_channels = CODE_CHANNELS  # reads the whole style code

    def __init__(self, shape: LiteShape | None = None):
        super().__init__()
        self.shape = shape or LiteShape()
        self.feat_channels = self.shape.features
        self.halvings = self.shape.halvings  # the features are at H / 2**halvings
        self.encoder = LiteEncoder(self.shape)
        self.head = StyleHead(self.shape)
        self.decoder = LiteDecoder(self.shape)

    def encode(self, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Lite features and their fp32 per-channel mean and std."""
        feat = self.encoder(content)
        mean, std = mean_std(feat)
        return feat, mean, std

    def style_target(self, style_mean: torch.Tensor, style_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The style code mapped into the lite feature space (fp32)."""
        mean, std, _ = self.head(style_mean, style_std)
        return mean, std

    def condition(self, style_mean: torch.Tensor, style_std: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """The decoder's FiLM vector for a style at strength alpha (decode_features' `cond`)."""
        return self.head(style_mean, style_std)[2] * alpha.reshape(-1, 1)

    def decode(self, feat, content_mean, content_std, style_mean, style_std, alpha, out_hw=None):
        target_mean, target_std, films = self.head(style_mean, style_std)
        target = adain(feat, target_mean, target_std, content_mean, content_std)
        return self.decode_features(blend_alpha(feat, target, alpha).to(feat.dtype), out_hw,
                                    films * alpha.reshape(-1, 1))

    def decode_features(self, feat: torch.Tensor, out_hw: tuple[int, int] | None = None,
                        cond: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder alone, from stylized features; `cond` from `condition` (None: unconditioned)."""
        if cond is None:
            cond = feat.new_zeros((feat.shape[0], 2 * sum(self.shape.film_channels)), dtype=torch.float32)
        out = self.decoder(feat, self.head.split(cond, torch.ones(feat.shape[0], device=feat.device)))
        if out_hw is not None:  # strided convs round odd sizes up; crop back
            out = out[..., : out_hw[0], : out_hw[1]]
        # Unclamped while training (as the full decoder is trained): a clamp has no gradient outside [0, 1].
        return out if self.training else out.clamp(0, 1)

    def forward(self, content, style_mean, style_std, alpha):
        feat, mean, std = self.encode(content)
        return self.decode(feat, mean, std, style_mean, style_std, alpha, out_hw=content.shape[-2:])


def count_macs(graph: nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of the convolutions and linear layers for one frame (hooks, one CPU pass)."""
    total = 0

    def conv_hook(m, _inp, out):
        nonlocal total
        total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, _inp, out):
        nonlocal total
        total += m.in_features * m.out_features

    hooks = [m.register_forward_hook(conv_hook) for m in graph.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in graph.modules() if isinstance(m, nn.Linear)]
    channels = graph.style_channels
    try:
        with torch.no_grad():
            graph(torch.rand(1, 3, height, width), torch.rand(1, channels), torch.rand(1, channels) + 0.1,
                  torch.ones(1))
    finally:
        for h in hooks:
            h.remove()
    return total


def from_v1(state: dict[str, torch.Tensor], shape: LiteShape) -> dict[str, torch.Tensor]:
    """A v1 lite state dict (AdaIN only, relu4_1 code, nn.Sequential layout) as v2's starting point:
    the same encoder and decoder convs, the head's relu4_1 columns, and FiLM off. Lets a v2 training
    start where v1 ended instead of from noise."""
    fresh = LiteGraph(shape).state_dict()
    renames = {"encoder.layers.0.0": "encoder.downs.0", "encoder.layers.1.0": "encoder.downs.1",
               "encoder.layers.2": "encoder.blocks.0", "encoder.layers.3": "encoder.blocks.1",
               "encoder.layers.4.0": "encoder.out", "decoder.layers.0.0": "decoder.inp",
               "decoder.layers.1": "decoder.blocks.0", "decoder.layers.2": "decoder.blocks.1",
               "decoder.layers.4.0": "decoder.ups.0", "decoder.layers.6.0": "decoder.ups.1",
               "decoder.layers.7.0": "decoder.rgb", "head.mlp.2": "head.target"}
    out = dict(fresh)
    for key, t in state.items():
        for old, new in renames.items():
            if key.startswith(old + "."):
                out[new + key[len(old):]] = t.float()
    w1, b1 = state["head.mlp.0.weight"].float(), state["head.mlp.0.bias"].float()
    hidden_v1, relu4 = w1.shape[0], w1.shape[1] // 2
    trunk = fresh["head.trunk.0.weight"].clone()
    trunk[:hidden_v1] = 0
    trunk[:hidden_v1, CODE_CHANNELS - relu4:CODE_CHANNELS] = w1[:, :relu4]          # relu4_1 means
    trunk[:hidden_v1, 2 * CODE_CHANNELS - relu4:] = w1[:, relu4:]                    # relu4_1 log stds
    bias = fresh["head.trunk.0.bias"].clone()
    bias[:hidden_v1] = b1
    target_w = torch.zeros_like(fresh["head.target.weight"])
    target_w[:, :hidden_v1] = state["head.mlp.2.weight"].float()
    out.update({"head.trunk.0.weight": trunk, "head.trunk.0.bias": bias, "head.target.weight": target_w,
                "head.target.bias": state["head.mlp.2.bias"].float()})
    return out
