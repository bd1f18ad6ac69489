"""A style image's code is computed once: later runs read it from the cache, keyed by the file's bytes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from engines.backends.torch_backend import TorchEngine
from engines.graph import load_graph
from engines.presets import resolve_style


@pytest.fixture
def counted_encode(monkeypatch, tmp_path):
    monkeypatch.setenv("STYLESTREAM_CACHE", str(tmp_path / "cache"))
    engine = TorchEngine(load_graph(model="lite"), device="cpu")
    calls = []

    def encode(image, size, source):
        calls.append(source)
        return engine.encode_style(image, size, source)

    return encode, calls


def _painting(path, seed):
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), (0, 0), 2))
    return path


def test_a_style_image_is_encoded_once_and_its_code_read_back(counted_encode, tmp_path):
    encode, calls = counted_encode
    image = _painting(tmp_path / "waves.png", 0)
    first = resolve_style(str(image), encode, 256)
    again = resolve_style(str(image), encode, 256)
    assert calls == ["waves"]
    assert again.source == "waves" and torch.equal(first.mean, again.mean) and torch.equal(first.std, again.std)


def test_an_edited_image_another_size_or_a_damaged_entry_is_encoded_again(counted_encode, tmp_path):
    encode, calls = counted_encode
    image = _painting(tmp_path / "waves.png", 0)
    first = resolve_style(str(image), encode, 256)
    resolve_style(str(image), encode, 128)  # another size: another code
    _painting(image, 1)  # the same name, other pixels
    edited = resolve_style(str(image), encode, 256)
    assert len(calls) == 3 and not torch.equal(first.mean, edited.mean)
    for entry in (tmp_path / "cache" / "style-codes").glob("*.safetensors"):
        entry.write_bytes(b"not a safetensors file")
    resolve_style(str(image), encode, 256)
    assert len(calls) == 4
