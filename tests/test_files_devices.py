"""The one-per-job helpers: atomic writes, output locks, file hashes (engines.files) and device names
(engines.devices)."""

import hashlib
import os
import subprocess
import sys

import pytest
import torch

from engines.devices import resolve_device
from engines.errors import BackendUnavailable, ConfigError, OutputError
from engines.files import OutputLock, atomic_output, atomic_write, file_sha256


@pytest.mark.parametrize("stop", [RuntimeError, KeyboardInterrupt], ids=["error", "Ctrl-C"])
def test_atomic_write_replaces_only_when_complete(tmp_path, stop):
    path = tmp_path / "out.bin"
    atomic_write(path, b"first")
    assert path.read_bytes() == b"first"
    with pytest.raises(stop), atomic_output(path) as tmp:
        tmp.write_bytes(b"half of the second")
        raise stop("while writing")
    assert path.read_bytes() == b"first"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # and no temporary file is left behind


def hold_lock(path):
    """Another real process that holds `path`'s OutputLock until killed (started once it holds it)."""
    code = ("import sys, time; from engines.files import OutputLock; "
            "lock = OutputLock(sys.argv[1]); assert lock.acquire() is None; print('held', flush=True); time.sleep(300)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_an_output_lock_refuses_a_live_holder_by_pid_and_takes_over_from_a_killed_one(tmp_path):
    out = tmp_path / "out.mp4"
    lock = OutputLock(out)
    assert lock.holder() is None and list(tmp_path.iterdir()) == []  # asking creates nothing
    other = hold_lock(out)
    try:
        assert lock.holder() == other.pid
        assert lock.acquire() == other.pid
        with pytest.raises(OutputError, match=rf"{out} is being written by another stylestream run "
                                              rf"\(process {other.pid}\)"):
            lock.claim()
    finally:
        other.kill()  # SIGKILL: its lock file stays, but the kernel dropped its lock
        other.wait()
    assert (tmp_path / ".out.mp4.lock").exists() and lock.holder() is None
    lock.claim()
    assert (tmp_path / ".out.mp4.lock").read_text() == str(os.getpid())
    assert OutputLock(out).acquire() == os.getpid()  # a second claim in this process is refused too
    lock.release()
    assert list(tmp_path.iterdir()) == []  # no lock file left beside the output
    assert OutputLock(out).acquire() is None


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
