"""The one-per-job helpers: atomic writes, file hashes (engines.files) and device names (engines.devices)."""

import hashlib

import pytest
import torch

from engines.devices import resolve_device
from engines.errors import BackendUnavailable, ConfigError
from engines.files import atomic_output, atomic_write, file_sha256


def test_atomic_write_replaces_only_when_complete(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write(path, b"first")
    assert path.read_bytes() == b"first"
    with pytest.raises(RuntimeError), atomic_output(path) as tmp:
        tmp.write_bytes(b"half of the second")
        raise RuntimeError("crash while writing")
    assert path.read_bytes() == b"first"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # and no temporary file is left behind


def test_file_sha256_reads_in_blocks(tmp_path):
    data = bytes(range(256)) * 9000  # over one 1 MiB block
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_resolve_device_names_and_kinds():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto", auto_cuda=False) == torch.device("cpu")
    assert resolve_device("cuda:1", check=False) == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="Unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(BackendUnavailable, match="TensorRT runs on CUDA devices only, not 'cpu'; use x"):
        resolve_device("cpu", kinds=("cuda",), who="TensorRT", hint="use x")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_resolve_device_without_a_gpu_says_what_to_do():
    with pytest.raises(BackendUnavailable, match="CUDA was asked for.*no NVIDIA GPU; use --device cpu"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
