"""Files: which are images (one list for the image command, image-folder sources and the training data),
writing one atomically, claiming an output against other runs, and hashing one. Each exists once, here.

No imaging library is imported here, so training on a bare GPU box does not need PIL.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

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
    """This process's claim on an output file while it writes it: `.NAME.lock` beside it, held with flock.

    The kernel drops the claim when the process ends however it ends (SIGKILL too), so a lock file that
    nobody holds is stale and is taken over. The lock file holds the owner's pid, for messages.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._fd: int | None = None

    def holder(self) -> int | None:
        """The pid of another live process holding the claim, or None (also when we hold it)."""
        if self._fd is not None:
            return None
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        finally:
            os.close(fd)

    def acquire(self) -> int | None:
        """Claim the output. None when claimed; else the pid of the live run that holds it (-1: unknown)."""
        while self._fd is None:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                return int(text) if text.isdigit() else -1
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed the file as we opened it: take the new one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self._fd = fd
        return None

    def release(self) -> None:
        """Give the claim up (the lock file goes, while still held, so no one takes a dead one)."""
        if self._fd is None:
            return
        self.lock_path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


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
