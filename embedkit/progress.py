"""Progress for long steps, and native libraries kept off the terminal.

:func:`bar`: a tqdm bar on a terminal; where stderr is not a terminal (a log file, a notebook's captured
output, CI) a rate line every few seconds instead (``desc: 40/700 file, 3.1 file/s, ETA 3:32``), so a log
shows progress without one line per item. Every step that can take longer than ~10 s uses one.

:func:`native_stderr_to_log`: TensorFlow Lite writes ``INFO: Created TensorFlow Lite XNNPACK delegate for
CPU.`` from C++ straight to file descriptor 2, through any progress bar. Around the calls that print it
(an interpreter's ``allocate_tensors``) fd 2 is pointed at a temporary file; afterwards the lines that came
from TensorFlow Lite go to the ``embedkit`` logger (``logging.getLogger("embedkit")``, DEBUG) and anything
else written meanwhile (another thread's output) is passed on to stderr unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger("embedkit")

#: seconds between two rate lines when stderr is not a terminal
EVERY_S = 5.0


def _fmt_s(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class RateLine:
    """tqdm's ``update`` / ``set_postfix_str`` / ``close`` for a non-terminal: one line every ``every_s``.

    Args:
        total: items expected (None: unknown, no ETA).
        desc: what is counted, printed first.
        unit: the item's name.
        every_s: least seconds between two lines (a last line is printed by ``close``).
        file: where the lines go (default ``sys.stderr``).
    """

    def __init__(self, total: int | None, desc: str, unit: str = "it", every_s: float = EVERY_S, file=None):
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.file = file
        self.n, self.postfix = 0, ""
        self.t0 = self.last = time.monotonic()
        self.closed = self.printed = False

    def line(self) -> str:
        """The current state: count, rate, ETA (when the total is known), postfix."""
        el = time.monotonic() - self.t0
        rate = self.n / el if el > 0 else 0.0
        of = f"/{self.total}" if self.total is not None else ""
        out = f"{self.desc}: {self.n}{of} {self.unit}, {rate:.3g} {self.unit}/s, {_fmt_s(el)} elapsed"
        if self.total is not None and 0 < self.n < self.total and rate > 0:
            out += f", ETA {_fmt_s((self.total - self.n) / rate)}"
        return out + (f" ({self.postfix})" if self.postfix else "")

    def _print(self) -> None:
        print(self.line(), file=self.file or sys.stderr, flush=True)
        self.last, self.printed = time.monotonic(), True

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items; print a line when ``every_s`` has passed since the last."""
        self.n += n
        if time.monotonic() - self.last >= self.every_s:
            self._print()

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        """Text shown after the counts (tqdm's name)."""
        self.postfix = s

    def close(self) -> None:
        """Print the final line (once), when a step took long enough to print one before."""
        if not self.closed:
            self.closed = True
            if self.printed:
                self._print()

    def __enter__(self) -> RateLine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bar(
    total: int | None, desc: str, unit: str = "it", enabled: bool = True, every_s: float = EVERY_S
) -> Any:
    """A progress counter: tqdm on a terminal, :class:`RateLine` elsewhere, a silent one when not ``enabled``.

    The returned object has ``update(n)``, ``set_postfix_str(s)``, ``close()`` and works as a context manager.
    """
    from tqdm import tqdm

    if not enabled:
        return tqdm(total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
    return RateLine(total, desc, unit, every_s)


def track(items: Iterable, desc: str, unit: str = "it", total: int | None = None, enabled: bool = True,
          every_s: float = EVERY_S) -> Iterator:
    """Iterate ``items`` with a :func:`bar` (``total`` defaults to ``len(items)`` where it has one)."""
    n = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    with bar(n, desc, unit, enabled, every_s) as b:
        for x in items:
            yield x
            b.update(1)


_lock = threading.Lock()
_state: dict[str, Any] = {"depth": 0}
#: what native libraries print that belongs in the log, not on the terminal
_NATIVE = ("TensorFlow Lite", "XNNPACK", "TfLite", "tflite")


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """Send what native code writes to fd 2 inside the block to the ``embedkit`` logger (see the module).

    Re-entrant and thread-safe: nested or concurrent blocks share one redirection, undone by the last exit.
    """
    with _lock:
        if _state["depth"] == 0:
            try:
                sys.stderr.flush()
                tmp = tempfile.TemporaryFile()
                saved = os.dup(2)
                os.dup2(tmp.fileno(), 2)
            except (OSError, ValueError, AttributeError):  # no fd 2 (a daemon): nothing to redirect
                _state["depth"] += 1
                _state.update(tmp=None, saved=None)
            else:
                _state["depth"] += 1
                _state.update(tmp=tmp, saved=saved)
        else:
            _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0 and _state.get("saved") is not None:
                tmp, saved = _state["tmp"], _state["saved"]
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", "replace")
                tmp.close()
                _state.update(tmp=None, saved=None)
                _forward(text)


def _forward(text: str) -> None:
    """Lines of native libraries → the logger; the rest back to stderr as written."""
    other = []
    for ln in text.splitlines(keepends=True):
        if any(k in ln for k in _NATIVE):
            log.debug(ln.rstrip())
        else:
            other.append(ln)
    if other:
        with contextlib.suppress(OSError, ValueError):
            os.write(2, "".join(other).encode())


__all__ = ["EVERY_S", "RateLine", "bar", "native_stderr_to_log", "track"]
