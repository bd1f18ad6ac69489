"""Partial output files: the hidden ".NAME.partial-PID-XXXX.EXT" a run writes beside its output before the
rename into place, whose they are (the pid in the name), and the one-line message for a failed write.

Shared by the video file sink and the cluster's join and clean-up, so that both name and find them alike.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path


def partial_tag() -> str:
    """The start of this process's partial files' names (after ".STEM."): the pid says whose they are."""
    return f"partial-{os.getpid()}-"


def stale_partials(path: Path) -> list[Path]:
    """Partial files of `path` left by runs that are no longer alive (also the old ".STEM.partial.EXT")."""
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.partial(?:-(\d+)-[A-Za-z0-9_]+)?{re.escape(path.suffix)}")
    found = []
    for p in path.parent.glob(f".{glob_escape(path.stem)}.partial*"):
        m = pattern.fullmatch(p.name)
        if m and p.is_file() and not (m.group(1) and pid_alive(int(m.group(1)))):
            found.append(p)
    return found


def glob_escape(text: str) -> str:
    return re.sub(r"([*?[])", r"[\1]", text)


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def describe_os_error(e: OSError, path: Path) -> str:
    """One line for a failed write, saying what to do."""
    code = e.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"Disk full while writing {path}: free some space or write to another disk"
    if code == errno.EFBIG:
        return f"{path} grew larger than this file system (or a file size limit) allows; write elsewhere"
    if code in (errno.EACCES, errno.EPERM):
        return f"Cannot write {path}: permission denied; choose a folder you can write to"
    if code == errno.EROFS:
        return f"Cannot write {path}: the file system is read-only; choose another folder"
    if code in (errno.ENOTDIR, errno.ENOENT):
        return f"Cannot write {path}: {path.parent} is not a folder that can be created"
    reason = (getattr(e, "strerror", None) or str(e)).splitlines()[0]
    return f"Cannot write {path}: {reason}"
