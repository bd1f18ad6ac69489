"""A checkpoint cut into parts of at most 16 MiB and put back together, bit for bit.

A lent GPU machine returns files of at most 16 MiB; the full checkpoint (decoder weights, Adam's
moments, the data generator's state) is about 42 MB. `split_checkpoint` cuts the file's bytes into
`NAME.partNN` files plus `NAME.parts.json` (sizes and sha256 of every part and of the whole);
`merge_checkpoint` checks every hash and writes the file atomically. Cutting bytes rather than tensors
keeps it exact and independent of what the checkpoint holds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engines.errors import WeightsError
from engines.files import atomic_output, file_sha256

PART_BYTES = 15 * 2**20  # under the 16 MiB a returned file may have


def index_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".parts.json")


def split_checkpoint(checkpoint: Path, out_dir: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """Write `checkpoint`'s bytes as parts (and their index) into `out_dir`. -> the files written."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if not checkpoint.is_file():
        raise WeightsError(f"No checkpoint to split at {checkpoint}")
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    with open(checkpoint, "rb") as f:
        while chunk := f.read(part_bytes):
            part = out_dir / f"{checkpoint.name}.part{len(parts):02d}"
            part.write_bytes(chunk)
            parts.append({"file": part.name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    index = index_path(out_dir / checkpoint.name)
    index.write_text(json.dumps({"file": checkpoint.name, "bytes": checkpoint.stat().st_size,
                                 "sha256": file_sha256(checkpoint), "parts": parts}, indent=1) + "\n")
    return [out_dir / p["file"] for p in parts] + [index]


def merge_checkpoint(index: Path, out: Path) -> Path:
    """Join the parts named in `index` (a `.parts.json`, parts beside it) into `out`, checking every hash."""
    index, out = Path(index), Path(out)
    try:
        meta = json.loads(index.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise WeightsError(f"Cannot read checkpoint index {index}: {e}") from None
    digest = hashlib.sha256()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp, open(tmp, "wb") as f:
        for p in meta["parts"]:
            path = index.parent / p["file"]
            if not path.is_file():
                raise WeightsError(f"Checkpoint part missing: {path}. Copy every part named in {index.name}.")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != p["sha256"]:
                raise WeightsError(f"Checkpoint part {path} is corrupt (sha256 differs from {index.name})")
            digest.update(data)
            f.write(data)
        if digest.hexdigest() != meta["sha256"]:
            raise WeightsError(f"The joined checkpoint does not match the sha256 in {index.name}")
    return out
