"""The one progress bar (rich): description, bar, done/total, any extra text columns, time left.

Used by file conversions (stream loop), `convert --ray` (streamer.cluster.progress), the image command
and training. rich is imported on first use, so a bare GPU box running the engines does not need it until
a bar is shown.
"""

from __future__ import annotations


def progress_bar(*texts: str, stderr: bool = False, elapsed: bool = False):
    """A rich Progress (a context manager; add tasks with add_task). `texts` are extra column templates
    such as "{task.fields[fps]} fps"; `stderr` keeps stdout free for machine-readable lines."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               *(TextColumn(t) for t in texts), *([TimeElapsedColumn()] if elapsed else []), TimeRemainingColumn()]
    return Progress(*columns, console=Console(stderr=True) if stderr else None)
