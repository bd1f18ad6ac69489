import pytest
import torch

from engines.adain import StyleCode, adain, blend_alpha, blend_styles, mean_std, preserve_color
from engines.errors import InputError


def test_adain_moves_statistics_to_the_style():
    torch.manual_seed(0)
    content = torch.randn(2, 8, 5, 7) * 3 + 1
    smean, sstd = torch.randn(2, 8), torch.rand(2, 8) + 0.5
    out = adain(content, smean, sstd)
    m, s = mean_std(out)
    assert torch.allclose(m, smean, atol=1e-4)
    assert torch.allclose(s, sstd, atol=1e-3)


def test_statistics_are_fp32_for_half_inputs():
    x = (torch.randn(1, 4, 16, 16) * 100).half()
    m, s = mean_std(x)
    assert m.dtype == torch.float32 and s.dtype == torch.float32
    assert adain(x, m, s).dtype == torch.float32


def test_masked_statistics_see_only_the_masked_region():
    x = torch.zeros(1, 1, 4, 4)
    x[..., :2] = 5.0
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2] = 1
    m, s = mean_std(x, mask)
    assert m.item() == pytest.approx(5.0) and s.item() < 0.01


def test_alpha_zero_keeps_content_and_one_gives_target():
    c, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.allclose(blend_alpha(c, t, 0.0), c)
    assert torch.allclose(blend_alpha(c, t, torch.tensor([1.0, 0.5])), torch.stack([t[0], (c[1] + t[1]) / 2]))


def test_style_code_blend_equals_interpolating_adain_outputs():
    torch.manual_seed(1)
    c = torch.randn(1, 6, 4, 4)
    s1 = StyleCode(torch.randn(6), torch.rand(6) + 0.1, "a")
    s2 = StyleCode(torch.randn(6), torch.rand(6) + 0.1, "b")
    mix = blend_styles([s1, s2], [0.7, 0.3])
    direct = 0.7 * adain(c, s1.mean[None], s1.std[None]) + 0.3 * adain(c, s2.mean[None], s2.std[None])
    assert torch.allclose(adain(c, mix.mean[None], mix.std[None]), direct, atol=1e-5)
    assert torch.allclose((0.7 * s1 + 0.3 * s2).mean, mix.mean)


def test_style_weights_are_normalised_and_validated():
    s = StyleCode(torch.ones(3), torch.ones(3))
    assert torch.allclose(blend_styles([s, s * 3], [1, 1]).mean, torch.full((3,), 2.0))
    with pytest.raises(InputError):
        blend_styles([s, s], [1.0])
    with pytest.raises(InputError):
        blend_styles([s], [-1.0])


def test_style_code_round_trips_through_a_file(tmp_path):
    code = StyleCode(torch.randn(512), torch.rand(512), "starry-night", {"work": "Van Gogh"})
    code.save(tmp_path / "s.safetensors")
    back = StyleCode.load(tmp_path / "s.safetensors")
    assert torch.equal(back.mean, code.mean) and torch.equal(back.std, code.std)
    assert back.source == "starry-night" and back.meta["work"] == "Van Gogh"
    assert (tmp_path / "s.safetensors").stat().st_size < 8000


def test_bad_style_code_file_is_an_input_error(tmp_path):
    p = tmp_path / "x.safetensors"
    p.write_bytes(b"not a safetensors file")
    with pytest.raises(InputError):
        StyleCode.load(p)


def test_preserve_color_keeps_content_chroma_and_stylized_luma():
    torch.manual_seed(2)
    content, stylized = torch.rand(1, 3, 8, 8) * 0.5 + 0.25, torch.rand(1, 3, 8, 8) * 0.5 + 0.25
    out = preserve_color(stylized, content)
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose((out * w).sum(1), (stylized * w).sum(1), atol=1e-5)
    # chroma (colour differences) follow the content
    assert torch.allclose(out[:, 0] - out[:, 1], content[:, 0] - content[:, 1], atol=1e-5)


def test_style_inputs_are_copied_to_a_device_once():
    # fp64 -> fp32 is a real copy, as host -> GPU is: made on the first frame, reused after
    code = StyleCode(torch.rand(8, dtype=torch.float64), torch.rand(8, dtype=torch.float64) + 0.5, "x")
    m1, s1 = code.batch(2, "cpu")
    m2, s2 = code.batch(3, "cpu")
    assert m1.shape == (2, 8) and m2.shape == (3, 8) and m1.dtype == s1.dtype == torch.float32
    assert m1.data_ptr() == m2.data_ptr() and s1.data_ptr() == s2.data_ptr()
    assert torch.allclose(m2[2], code.mean.float()) and torch.allclose(s2[0], code.std.float())
    assert code == StyleCode(code.mean, code.std, "x")  # the copies are not part of the value


def test_an_older_relu4_1_code_blends_with_a_four_layer_one_on_relu4_1():
    from engines.adain import CODE_CHANNELS, STYLE_CHANNELS, StyleCode, blend_styles

    new = StyleCode(torch.rand(CODE_CHANNELS), torch.rand(CODE_CHANNELS) + 0.1, "new")
    old = StyleCode(torch.rand(STYLE_CHANNELS), torch.rand(STYLE_CHANNELS) + 0.1, "old")
    mixed = blend_styles([new, old], [1, 1])
    torch.testing.assert_close(mixed.mean, (new.mean[-STYLE_CHANNELS:] + old.mean) / 2)
