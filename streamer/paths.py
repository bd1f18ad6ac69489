"""Where a batch job's results go: the input files (folders expanded) and one output path for each.

Shared by `stylestream image` and `stylestream convert`, so both refuse the same mistakes: a missing
input, an empty folder, several inputs for one output file, an output that would overwrite its
input, and two inputs that would land on the same output (same name in two folders).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from engines.errors import InputError, OutputError
from engines.files import files_in


def pair_outputs(inputs: list[Path], output: Path, suffixes: Collection[str], kind: str,
                 is_file_name: Callable[[Path], bool], out_name: Callable[[Path], str]) -> list[tuple[Path, Path]]:
    """(input, output) pairs. A folder among `inputs` stands for its files with `suffixes`; one input and
    an output that `is_file_name` gives that file, otherwise `output` is a folder of `out_name(input)`."""
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = files_in(p, suffixes)
            if not found:
                raise InputError(f"No {kind} files in {p} (looked for {', '.join(sorted(suffixes))})")
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise InputError(f"Input not found: {p}")
    if not files:
        raise InputError(f"No input {kind}s given")
    if is_file_name(output):
        if len(files) > 1:
            raise OutputError(f"{len(files)} input {kind}s need an output folder, not the file name {output}")
        pairs = [(files[0], output)]
    else:
        pairs = [(f, output / out_name(f)) for f in files]
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst.resolve() == src.resolve():
            raise OutputError(f"Output {dst} would overwrite its input; choose another output")
        if dst.resolve() in seen:
            raise OutputError(f"{seen[dst.resolve()]} and {src} would both be written to {dst}; rename one of them")
        seen[dst.resolve()] = src
    return pairs
