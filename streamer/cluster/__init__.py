"""`stylestream convert --ray`: the same conversion, spread over a Ray cluster.

    plan.py      work units: whole files, and long files cut at keyframes into segments
    segment.py   one unit on a worker, with the single-machine pipeline (warm-up frames for the smoother)
    join.py      a split file's segments remuxed into one output, audio copied once
    worker.py    the Ray actors (a worker per GPU or per N cores, keeping its engine; the progress board)
    progress.py  the aggregated progress bar and --stats lines
    scheduler.py workers, units, retries after a worker died, Ctrl-C, the summary
    driver.py    `convert --ray`: connect, plan (rerun: skip complete outputs, reuse finished segments), run

Ray is an optional extra (`pip install 'stylestream[ray]'`); nothing here imports it until `--ray` runs.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_ADDRESS = "default"  # `--ray` without a value: RAY_ADDRESS when set, else a local Ray


def ray_overrides(value: str) -> dict:
    """The `ray:` config section that `--ray [ADDRESS]` stands for."""
    from engines.errors import ConfigError

    if value == DEFAULT_ADDRESS:
        return {}
    if Path(value).exists():
        raise ConfigError(f"--ray takes a cluster address (HOST:6379 or ray://HOST:10001), not the file {value}; "
                          f"put the inputs before --ray, or write --ray={value} if it really is an address")
    return {"address": value}


def convert_command(cfg, inputs: list[Path], output: Path, console) -> int:
    """Run `convert --ray`, print what was written, skipped and failed, and the exit status (2 if any failed)."""
    from rich.markup import escape

    from streamer.cluster.driver import run_ray_convert

    summary = run_ray_convert(cfg, inputs, output)
    for path in summary.written:
        console.print(f"wrote {escape(str(path))}", soft_wrap=True)
    for path in summary.skipped:
        console.print(f"skipped {escape(str(path))}: already complete (--overwrite converts it again)",
                      soft_wrap=True)
    for message in summary.failed.values():
        console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    for name, info in summary.workers.items():
        console.print(f"  {name} node {info['node'][:12]}: {info['frames']} frames in {info['units']} units",
                      soft_wrap=True, highlight=False)
    console.print(summary.line(), soft_wrap=True, highlight=False)
    return 2 if summary.failed else 0
