"""Files: which are images (one list for the image command, image-folder sources and the training data),
writing one atomically, claiming an output against other runs, and hashing one. Each exists once, here.

No imaging library is imported here, so training on a bare GPU box does not need PIL.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout, lock_descriptor

from engines.errors import OutputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def files_in(folder: Path, suffixes: Collection[str]) -> list[Path]:
    """The files directly in `folder` whose suffix (any case) is one of `suffixes`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def image_files(folder: Path) -> list[Path]:
    return files_in(folder, IMAGE_SUFFIXES)


def temp_beside(path: Path, tag: str = "") -> Path:
    """A new, empty, uniquely named hidden file beside `path` (same extension, so encoders pick the same
    format), created with the permissions the umask gives an ordinary new file (mkstemp's are 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{tag}", suffix=path.suffix, dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    os.close(fd)
    return Path(tmp)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary file beside `path` to write to; renamed onto `path` when the block ends without an
    error, removed otherwise. A crash or a second process never leaves half a file under the name."""
    path = Path(path)
    tmp = temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class OutputLock:
    """This process's claim on an output file while it writes it: `.NAME.lock` beside it, held with filelock.

    filelock's lock is the kernel's flock, which goes when the process ends however it ends (SIGKILL too): a
    lock file nobody holds is stale and is simply taken. The lock file holds the owner's pid, for messages.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        # blocking=False: a busy output is refused, never waited for. thread_local=False: the stream loop opens
        # a sink on its sink thread and may abort it from the main one.
        self._lock = FileLock(self.lock_path, blocking=False, thread_local=False, on_acquired=_write_pid)

    def holder(self) -> int | None:
        """The pid of another live process holding the claim, or None (also when we hold it).

        Probes with filelock's own primitive on a read-only descriptor, so it creates no lock file."""
        if self._lock.is_locked:
            return None
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except OSError:
            return None
        try:
            if lock_descriptor(fd, blocking=False):
                return None  # nobody holds it (closing the descriptor drops our probe)
            for _ in range(20):  # a holder writes its pid just after it takes the lock: give it a moment
                if text := os.pread(fd, 32, 0).decode(errors="replace").strip():
                    return int(text) if text.isdigit() else -1
                time.sleep(0.005)
            return -1
        finally:
            os.close(fd)

    def acquire(self) -> int | None:
        """Claim the output. None when claimed; else the pid of the live run that holds it (-1: unknown)."""
        for _ in range(3):
            try:
                self._lock.acquire()
                return None
            except Timeout:
                # Busy, or the holder removed the file just as we locked it (then no one holds it: try again).
                if (pid := self.holder()) is not None:
                    return pid
        return -1

    def claim(self) -> None:
        """acquire(), or OutputError naming the output and the run that holds it."""
        if (pid := self.acquire()) is not None:
            raise busy_error(self.path, pid)

    def release(self) -> None:
        """Give the claim up. The lock file goes while still held, so no one takes a dead one; filelock itself
        keeps the file, and one left beside every output would be litter."""
        if not self._lock.is_locked:
            return
        self.lock_path.unlink(missing_ok=True)
        self._lock.release(force=True)


def busy_error(path: Path, pid: int) -> OutputError:
    who = f"process {pid}" if pid > 0 else "another process"
    return OutputError(f"{path} is being written by another stylestream run ({who}); wait for it to finish "
                       f"or choose another output name")


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)


def atomic_write(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
