"""The speed benchmark's output: the JSON file (where the caller says) and the table with the machine on top."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from engines.errors import OutputError
from engines.files import atomic_write


def default_path(result: dict, folder: str | Path | None = None) -> Path:
    """speed-<host kind>-<date>.json in `folder` (default: the current folder; the package never
    assumes it sits in a checkout: benchmarks/speed.py passes benchmarks/results)."""
    folder = Path(folder) if folder is not None else Path.cwd()
    date = result.get("created", dt.date.today().isoformat())[:10]
    return folder / f"speed-{result['machine'].get('host_kind', 'cpu')}-{date}.json"


def write_result(result: dict, path: str | Path | None = None, folder: str | Path | None = None) -> Path:
    """Write the JSON to `path`, or to default_path(result, folder)."""
    path = Path(path) if path else default_path(result, folder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, (json.dumps(result, indent=2) + "\n").encode())
    except OSError as e:
        raise OutputError(f"Cannot write the benchmark result {path}: {e}") from None
    return path


COLUMNS = (("model", "model"), ("backend", "backend"), ("variant", "variant"), ("precision", "precision"),
           ("resolution", "resolution"),
           ("batch", "batch"), ("stylize_ms_median", "ms/frame"), ("stylize_ms_p90", "p90 ms"),
           ("fps", "fps"), ("frame_ms_median", "ms incl. up/down"), ("peak_mem_mb", "peak MB"))


def table_rows(result: dict) -> list[list[str]]:
    return [["-" if r.get(k) is None else str(r[k]) for k, _ in COLUMNS] for r in result["results"]]


def note_lines(result: dict) -> list[str]:
    """What goes under the table: end-to-end results from hooks, then what was skipped and why."""
    lines = []
    for backend, extra in result.get("extra", {}).items():
        c = extra.get("convert")
        if c:
            lines.append(f"convert, end to end ({backend}): {c['fps']} fps on a {c['clip']} clip, {c['frames']} frames "
                         f"in {c['seconds']} s (smoothing {c['smoothing']}, preset {c.get('preset', 'medium')})")
        for p in extra.get("convert_presets", [])[1:]:
            lines.append(f"  preset {p['preset']}: {p['fps']} fps")
        st = extra.get("convert_stages", {}).get("stages")
        if st:
            lines.append("  ms per frame: " + ", ".join(f"{k} {v}" for k, v in st["ms_per_frame"].items())
                         + f" (threads: {', '.join(f'{k} {v}' for k, v in st['thread_ms_per_frame'].items())})")
    for sk in result.get("skipped", []):
        where = " ".join(filter(None, (sk.get("model"), sk.get("backend"), sk.get("variant"), sk.get("resolution"))))
        lines.append(f"skipped {where}: {sk['reason']}")
    return lines


def print_table(result: dict, file=None) -> None:
    """The results as a table (rich when importable, plain text otherwise), machine line on top."""
    import sys

    m = result["machine"]
    title = f"stylestream speed: {m.get('gpu') or m.get('cpu')} ({m.get('cpu_cores')} cores), torch {m.get('torch')}"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        out = file or sys.stdout
        rows = [[h for _, h in COLUMNS]] + table_rows(result)
        widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
        out.write(title + "\n")
        for r in rows:
            out.write("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + "\n")
        for line in note_lines(result):
            out.write(line + "\n")
        return
    table = Table(title=title)
    for i, (_, head) in enumerate(COLUMNS):
        table.add_column(head, justify="left" if i < 3 else "right")
    for r in table_rows(result):
        table.add_row(*r)
    console = Console(file=file)
    if not console.is_terminal:  # a file or a pipe: no terminal width to fit, so do not squeeze the columns
        console.width = max(console.width, 132)
    console.print(table)
    for line in note_lines(result):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
