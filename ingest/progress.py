"""Progress of one run that a person can follow: counts, rates and time left.

The stages report what they have done through this module's hooks (a stage
started or ended, rows read, validated or written, the delivery's bytes the
decrypting tool has consumed); with no :class:`Tracker` active the hooks do
nothing, so the library costs nothing when nobody watches. A tracker turns the
hooks into a :class:`Snapshot` and hands one to its sink at every stage's start
and end and every ``interval`` seconds in between: a line on the terminal, a
log line, a Prefect artifact.

Only counts, rates, sizes, stage names and times ever pass through here:
nothing in a snapshot is, or is made from, a data value.

The time left comes from the bytes decrypted: while the decrypting tool (gpg)
reads the delivery, the share it has consumed and its rate give the time it
still needs. The later stages are measured in rows, counted as each ends.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

STAGES = ("open-media", "read", "validate", "encrypt", "publish")
"""A run's stages in order (a delivery already processed ends after the first)."""

ROW_COUNTS = ("read", "validated", "written")

_WORDS = {"open-media": "opening and decrypting", "read": "reading", "validate": "validating",
          "encrypt": "encrypting and writing", "publish": "publishing",
          "passphrase": "reading the passphrase", "report": "writing the report"}


@dataclass(frozen=True)
class Snapshot:
    """Where a run stands; counts and times only."""

    elapsed: float
    stage: str | None
    """The stage running, None between stages and once the run has ended."""
    stages_done: tuple[str, ...]
    bytes_total: int
    """Size of what the decrypting tool is given (0 until one runs)."""
    bytes_decrypted: int
    decrypt_seconds: float
    rows: dict[str, int]
    """Rows ``read``, ``validated`` and ``written`` so far."""
    row_seconds: dict[str, float]
    """Seconds the stage that produced each count took."""

    @property
    def decrypt_rate(self) -> float:
        """Bytes of the delivery decrypted per second."""
        return self.bytes_decrypted / self.decrypt_seconds if self.decrypt_seconds > 0 else 0.0

    def rate(self, count: str) -> float:
        """Rows per second of the stage that produced ``count``."""
        seconds = self.row_seconds.get(count, 0.0)
        return self.rows.get(count, 0) / seconds if seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds the decryption still needs, while it runs and its rate is known."""
        if self.stage != "open-media" or not self.bytes_total or self.decrypt_rate <= 0:
            return None
        return max(self.bytes_total - self.bytes_decrypted, 0) / self.decrypt_rate

    @property
    def percent(self) -> float:
        """The run's progress, 0-100: each stage an equal share, decryption's share
        filled as the bytes are consumed."""
        done = sum(1 for s in STAGES if s in self.stages_done)
        part = 0.0
        if self.stage == "open-media" and self.bytes_total:
            part = min(self.bytes_decrypted / self.bytes_total, 1.0)
        return round(100.0 * min((done + part) / len(STAGES), 1.0), 1)

    def line(self) -> str:
        """One line for a person: what runs, counts with their rates, time left."""
        if self.stage:
            parts = [_WORDS.get(self.stage, self.stage)]
        elif self.stages_done:
            last = self.stages_done[-1]
            parts = ["done" if last == "publish" else f"{_WORDS.get(last, last)} done"]
        else:
            parts = ["starting"]
        if self.bytes_total:
            share = min(self.bytes_decrypted / self.bytes_total, 1.0)
            parts.append(f"decrypted {_size(self.bytes_decrypted)} of "
                         f"{_size(self.bytes_total)} ({share:.0%}, "
                         f"{_size(self.decrypt_rate)}/s)")
        for count in ROW_COUNTS:
            if count in self.rows:
                parts.append(f"{count} {self.rows[count]:,} rows "
                             f"({self.rate(count):,.0f}/s)")
        if (eta := self.eta) is not None:
            parts.append(f"about {eta:.0f} s left to decrypt")
        return f"ingest: [{self.elapsed:6.1f} s] " + "; ".join(parts)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


Sink = Callable[[Snapshot, str], None]
"""Receives a snapshot and why it was taken: ``start``, ``end`` (of a stage),
``tick`` (the interval passed) or ``finish`` (the run ended)."""


@dataclass
class Tracker:
    """Collects one run's hooks and hands snapshots to its ``sinks``.

    Use as a context manager: while it is open it is the process's active
    tracker (one run at a time per process, as the CLI and a flow run are).
    :func:`watching` adds a sink to it.
    """

    sinks: list[Sink]
    interval: float = 5.0
    _clock: float = field(default_factory=time.perf_counter)
    _stage: str | None = None
    _stage_started: float = 0.0
    _last_stage_seconds: float = 0.0
    _done: list[str] = field(default_factory=list)
    _rows: dict[str, int] = field(default_factory=dict)
    _row_seconds: dict[str, float] = field(default_factory=dict)
    _row_seconds_closed: dict[str, float] = field(default_factory=dict)
    """Each count's seconds in the stages that have ended."""
    _counting: set[str] = field(default_factory=set)
    """Counts the running stage has added to (a streamed run counts batch by batch)."""
    _inputs: list[tuple[Callable[[], int], int, float]] = field(default_factory=list)
    _bytes_total: int = 0
    _bytes_before: int = 0
    _decrypt_seconds: float = 0.0
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Tracker:
        global _active
        self._clock = time.perf_counter()
        _active = self
        if self.interval > 0:
            self._thread = threading.Thread(target=self._tick, name="ingest-progress",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        global _active
        if _active is self:
            _active = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._stage is not None or not self._done:  # stopped inside a stage
            self._emit("finish")

    def snapshot(self) -> Snapshot:
        with self._lock:
            consumed = self._bytes_before
            seconds = self._decrypt_seconds
            for probe, total, started in self._inputs:
                consumed += min(_safe(probe), total)
                seconds += time.perf_counter() - started
            return Snapshot(time.perf_counter() - self._clock, self._stage,
                            tuple(self._done), self._bytes_total, consumed, seconds,
                            dict(self._rows), dict(self._row_seconds))

    # -- hooks (through the module functions below) ------------------------------------

    def stage_started(self, name: str) -> None:
        with self._lock:
            self._stage, self._stage_started = name, time.perf_counter()
        self._emit("start")

    def stage_ended(self, name: str) -> None:
        with self._lock:
            self._last_stage_seconds = time.perf_counter() - self._stage_started
            for count in self._counting:
                self._row_seconds_closed[count] = (self._row_seconds_closed.get(count, 0.0)
                                                   + self._last_stage_seconds)
                self._row_seconds[count] = self._row_seconds_closed[count]
            self._counting.clear()
            self._done.append(name)
            self._stage = None
        self._emit("end")

    def rows(self, count: str, n: int) -> None:
        with self._lock:
            self._rows[count] = self._rows.get(count, 0) + n
            closed = self._row_seconds_closed.get(count, 0.0)
            if self._stage:  # counted as it goes: the stage's time so far
                self._counting.add(count)
                self._row_seconds[count] = closed + time.perf_counter() - self._stage_started
            else:  # counted once its stage had ended: that stage's time
                closed += self._last_stage_seconds
                self._row_seconds_closed[count] = self._row_seconds[count] = closed

    @contextlib.contextmanager
    def input_read(self, probe: Callable[[], int], total: int) -> Iterator[None]:
        entry = (probe, total, time.perf_counter())
        with self._lock:
            self._bytes_total += total
            self._inputs.append(entry)
        try:
            yield
        finally:
            with self._lock:
                self._inputs.remove(entry)
                self._bytes_before += min(_safe(probe), total)
                self._decrypt_seconds += time.perf_counter() - entry[2]

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._emit("tick")

    def _emit(self, why: str) -> None:
        snap = self.snapshot()
        for sink in list(self.sinks):
            try:
                sink(snap, why)
            except Exception:  # noqa: BLE001 - showing progress must never fail a run
                pass


def _safe(probe: Callable[[], int]) -> int:
    try:
        return probe()
    except OSError:  # the descriptor is closed: the tool has finished with it
        return 0


_active: Tracker | None = None


@contextlib.contextmanager
def watching(sink: Sink, interval: float = 5.0) -> Iterator[Tracker]:
    """``sink`` gets the snapshots of the run in this process: added to the active
    tracker if there is one (the CLI's, around a flow run), else a tracker of its own."""
    if _active is not None:
        tracker = _active
        tracker.sinks.append(sink)
        try:
            yield tracker
        finally:
            tracker.sinks.remove(sink)
        return
    with Tracker([sink], interval) as tracker:
        yield tracker


# -- the hooks the stages call: no-ops unless a tracker is active -------------------------

def stage_started(name: str) -> None:
    if _active is not None:
        _active.stage_started(name)


def stage_ended(name: str) -> None:
    if _active is not None:
        _active.stage_ended(name)


def rows(count: str, n: int) -> None:
    """``n`` more rows ``read``, ``validated`` or ``written``, counted in the stage
    that has just done them (its time gives the rate)."""
    if _active is not None:
        _active.rows(count, n)


@contextlib.contextmanager
def tool_input(fd: int) -> Iterator[None]:
    """While a child tool reads the delivery from ``fd`` (a memory file it inherits,
    sharing our file offset), count how far it has read."""
    if _active is None or fd < 0:
        yield
        return
    try:
        info = os.fstat(fd)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        yield
        return
    with _active.input_read(lambda: os.lseek(fd, 0, os.SEEK_CUR), info.st_size):
        yield


# -- sinks --------------------------------------------------------------------------------

class TerminalLines:
    """A sink writing to ``stream``: on a terminal one line rewritten in place (a
    new line as each stage ends); elsewhere plain lines, one per snapshot."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = (bool(getattr(self.stream, "isatty", lambda: False)())
                     if live is None else live)

    def __call__(self, snap: Snapshot, why: str) -> None:
        if self.live:
            end = "\n" if why in ("end", "finish") else ""
            self.stream.write("\r" + snap.line() + "\x1b[K" + end)
        elif why != "start":  # a start line says nothing a plain log needs
            self.stream.write(snap.line() + "\n")
        self.stream.flush()


def wants_progress(flag: bool | None, stream: TextIO | None = None) -> bool:
    """``--progress`` (True), ``--quiet`` (False), else shown on a terminal only."""
    if flag is not None:
        return flag
    return bool(getattr(stream or sys.stderr, "isatty", lambda: False)())
