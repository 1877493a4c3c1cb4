"""A one-line progress bar for long per-volume work (sliding-window inference).

On a terminal the line redraws in place; in a log file (not a TTY) only the
finished line is written, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Optional

__all__ = ["ProgressBar"]


class ProgressBar:
    """``bar(done, total)`` draws ``label [#####.....] done/total unit (s)``.

    Args:
        label: what is being processed (e.g. a subject id).
        unit: what is counted (``windows``).
        stream: where to draw; standard output by default.
        width: characters of the bar.
    """

    def __init__(self, label: str, unit: str = "windows", stream: Optional[IO[str]] = None,
                 width: int = 30) -> None:
        self.label, self.unit, self.width = label, unit, width
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self._last = -1.0

    def line(self, done: int, total: int) -> str:
        """The text of the bar at ``done`` out of ``total``."""
        filled = int(self.width * done / total) if total else self.width
        seconds = time.perf_counter() - self.start
        return (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                f"{done}/{total} {self.unit} ({seconds:.1f}s)")

    def __call__(self, done: int, total: int) -> None:
        finished = done >= total
        now = time.perf_counter()
        if self.tty and (finished or now - self._last > 0.1):
            self.stream.write("\r" + self.line(done, total) + ("\n" if finished else ""))
            self.stream.flush()
            self._last = now
        elif finished and not self.tty:
            self.stream.write(self.line(done, total) + "\n")
            self.stream.flush()
