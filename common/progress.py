"""Progress bars for long management commands: shown on a terminal, silent in logs and CI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from tqdm import tqdm


@contextmanager
def progress_bar(
    *, total: int | None, unit: str, description: str, stream: IO[str] | None = None
) -> Iterator[tqdm]:
    stream = stream or sys.stderr
    bar = tqdm(
        total=total,
        unit=unit,
        unit_scale=True,
        desc=description,
        file=stream,
        disable=not stream.isatty(),
        dynamic_ncols=True,
    )
    try:
        yield bar
    finally:
        bar.close()


def count_lines(path: str) -> int:
    with open(path, "rb") as handle:
        return max(
            0, sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1
        )
