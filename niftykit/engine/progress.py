"""Progress reports: a bar for per-volume work (sliding-window inference) and the
training progress line.

On a terminal a line redraws in place; in a log file (not a TTY) only finished
lines are written, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import IO, Callable, Optional

__all__ = ["ProgressBar", "TrainingProgress", "duration"]


def duration(seconds: float) -> str:
    """``0:01:05`` for 65 s (hours:minutes:seconds)."""
    return str(timedelta(seconds=int(round(max(0.0, seconds)))))


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


class TrainingProgress:
    """The training progress line: NiftyNet's ``training iter`` line (same start, so
    scripts that read NiftyNet logs still work) with the learning rate, a rate and an ETA:
    ``training iter 40, loss=0.4123, lr=0.001 (40/300, 12.3 it/s, ETA 0:00:21)``.

    :meth:`step` returns the line to log at the first iteration, every ``every_n``
    and the last; on a terminal the other iterations redraw a live line in place
    (call :meth:`clear` before logging anything else). The rate counts from the
    end of the first iteration (which traces the graph) and includes validation
    and checkpoint time, so the ETA is the wall time left.

    Args:
        start: the iteration before the first one of this run (``starting_iter``).
        max_iter: the last iteration.
        every_n: ``training.log_every_n``.
        stream: the terminal or log stream; standard output by default.
        clock: seconds, monotonic (for tests).
    """

    def __init__(self, start: int, max_iter: int, every_n: int = 10,
                 stream: Optional[IO[str]] = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.start, self.max_iter, self.every_n = start, max_iter, max(1, every_n)
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.began = clock()
        self._first: Optional[tuple] = None  # (iteration, time) at the end of the first one
        self._live, self._drawn = False, -1.0

    def rate(self, iteration: int) -> Optional[float]:
        """Iterations per second since the first iteration, or None before the second."""
        if self._first is None or iteration <= self._first[0]:
            return None
        seconds = self.clock() - self._first[1]
        return (iteration - self._first[0]) / seconds if seconds > 0 else None

    def line(self, iteration: int, loss: float, lr: float) -> str:
        """The progress line after ``iteration``."""
        rate = self.rate(iteration)
        speed = (f"{rate:.3g} it/s, ETA {duration((self.max_iter - iteration) / rate)}"
                 if rate else "timing...")
        return (f"training iter {iteration}, loss={loss:.4f}, lr={lr:.3g} "
                f"({iteration}/{self.max_iter}, {speed})")

    def step(self, iteration: int, loss: float, lr: float) -> Optional[str]:
        """Record ``iteration``; returns the line to log when one is due, else None."""
        if self._first is None:
            self._first = (iteration, self.clock())
        due = (iteration == self.start + 1 or iteration % self.every_n == 0
               or iteration == self.max_iter)
        if due:
            self.clear()
            return self.line(iteration, loss, lr)
        now = self.clock()
        if self.tty and now - self._drawn > 0.1:
            self.stream.write("\r\x1b[K" + self.line(iteration, loss, lr))
            self.stream.flush()
            self._live, self._drawn = True, now
        return None

    def clear(self) -> None:
        """Erase the live line (terminal only), so that a log line can follow."""
        if self._live:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._live = False

    def elapsed(self) -> float:
        """Seconds since this object was made."""
        return self.clock() - self.began
