import json

import pytest
import torch
from safetensors.torch import save_file

from engines.decoder import build_decoder, load_decoder, manifest_path, random_decoder
from engines.errors import WeightsError
from engines.files import file_sha256


def test_decoder_mirrors_the_encoder_shape():
    dec = random_decoder(0)
    out = dec(torch.randn(1, 512, 5, 7))
    assert out.shape == (1, 3, 40, 56)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)) for m in dec.modules())


def _save_with_manifest(dec, path):
    save_file({k: v.half().contiguous() for k, v in dec.state_dict().items()}, str(path))
    manifest_path(path).write_text(json.dumps({"sha256": file_sha256(path), "steps": 1}))


def test_safetensors_with_manifest_round_trip(tmp_path):
    dec = random_decoder(1)
    path = tmp_path / "decoder.safetensors"
    _save_with_manifest(dec, path)
    loaded = load_decoder(path)
    assert torch.allclose(loaded[1].weight, dec[1].weight.half().float())


def test_sha256_mismatch_is_detected(tmp_path):
    path = tmp_path / "decoder.safetensors"
    _save_with_manifest(random_decoder(1), path)
    m = json.loads(manifest_path(path).read_text())
    m["sha256"] = "0" * 64
    manifest_path(path).write_text(json.dumps(m))
    with pytest.raises(WeightsError, match="sha256"):
        load_decoder(path)


def test_adain_port_decoder_pth_loads(tmp_path):
    # The public PyTorch AdaIN port saves decoder.state_dict() of the same nn.Sequential layout.
    dec = build_decoder()
    path = tmp_path / "decoder.pth"
    torch.save(dec.state_dict(), path)
    loaded = load_decoder(path)
    assert torch.equal(loaded[-1].weight, dec[-1].weight)


def test_weights_that_do_not_fit_are_a_clear_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"1.weight": torch.zeros(3, 3, 3, 3)}, path)
    with pytest.raises(WeightsError, match="does not fit"):
        load_decoder(path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"1.weight": torch.nn.Conv2d(1, 1, 1)}, path)  # a module, not a tensor
    with pytest.raises(WeightsError):
        load_decoder(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_decoder(tmp_path / "nope.safetensors")
