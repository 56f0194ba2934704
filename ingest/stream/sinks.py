"""Outputs written as batches arrive: age-sealed JSON Lines and encrypted Parquet.

Each is one output file of the staging folder, fed batch after batch; none
holds more than a batch (and a row group) of plaintext at a time.
"""

from __future__ import annotations

import io
import queue
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import polars as pl

from ..errors import OutputError
from ..keys import Keyring
from ..writers.jsonl import encrypt_into, json_ready
from ..writers.parquet import ROWS_PER_GROUP, EncryptedWriter, encrypted_writer

_END = b""
_AHEAD = 4
"""Serialised slices waiting for the encryption, at most."""
_ROWS = 8192
"""Rows serialised at a time (about 2 MB of JSON for the reference table)."""


class _Stopped(Exception):  # noqa: N818 - ends the encryption of an abandoned output
    pass


class _Queued(io.RawIOBase):
    """A readable stream of the byte strings put into a queue, until an empty one."""

    def __init__(self, parts: queue.Queue[bytes | None]) -> None:
        self._parts = parts
        self._chunk = memoryview(b"")
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._chunk and not self._ended:
            part = self._parts.get()
            if part is None:
                raise _Stopped
            if part == _END:
                self._ended = True
            self._chunk = memoryview(part)
        count = min(len(buffer), len(self._chunk))
        buffer[:count] = self._chunk[:count]
        self._chunk = self._chunk[count:]
        return count


class AgeLines:
    """JSON Lines sealed to ``recipient`` as one age stream into ``sink``, a frame
    at a time (the same bytes as :func:`ingest.writers.write_jsonl` of the frames
    put one after the other)."""

    def __init__(self, recipient: object, sink: BinaryIO, name: str) -> None:
        self._name = name
        self._parts: queue.Queue[bytes | None] = queue.Queue(maxsize=_AHEAD)
        self._pool = ThreadPoolExecutor(max_workers=1)
        reader = io.BufferedReader(_Queued(self._parts), buffer_size=1 << 20)
        self._job: Future[None] = self._pool.submit(encrypt_into, reader, recipient, sink)

    def write(self, frame: pl.DataFrame) -> None:
        # in slices: the text waiting for the encryption stays a few MB, whatever the batch
        ready = json_ready(frame)
        for offset in range(0, frame.height, _ROWS):
            out = io.BytesIO()
            ready.slice(offset, _ROWS).write_ndjson(out)
            self._put(out.getvalue())

    def _put(self, part: bytes | None) -> None:
        while True:
            try:
                self._parts.put(part, timeout=0.5)
                return
            except queue.Full:
                if self._job.done():
                    self._job.result()  # the encryption's own error
                    raise OutputError(f"writing {self._name}: the encryption stopped early; "
                                      "nothing was published") from None

    def close(self) -> None:
        """The end of the stream: waits for the encryption to seal it."""
        self._put(_END)
        try:
            self._job.result()
        finally:
            self._pool.shutdown(wait=True)

    def abandon(self) -> None:
        """Stop the encryption without finishing the stream (the run failed)."""
        while True:
            try:
                self._parts.get_nowait()
            except queue.Empty:
                break
        self._parts.put(None)
        self._pool.shutdown(wait=True)


class ParquetRows:
    """The encrypted Parquet file, in row groups of ``ROWS_PER_GROUP`` rows as the
    in-memory writer cuts them, whatever the batches' sizes."""

    def __init__(self, keyring: Keyring, restricted: list[str], name: str, sha256: str,
                 sink: BinaryIO) -> None:
        self._args = (keyring, restricted, name, sha256, sink)
        self._writer: EncryptedWriter | None = None
        self._pending: list[pl.DataFrame] = []
        self._rows = 0
        self.material = b""

    def write(self, frame: pl.DataFrame) -> None:
        if self._writer is None:
            self._writer, self.material = encrypted_writer(frame.head(0), *self._args)
        if frame.height:
            self._pending.append(frame)
            self._rows += frame.height
        while self._rows >= ROWS_PER_GROUP:
            self._flush(ROWS_PER_GROUP)

    def _flush(self, rows: int) -> None:
        assert self._writer is not None
        whole = pl.concat(self._pending, rechunk=False) if len(self._pending) > 1 \
            else self._pending[0]
        self._writer.write_frame(whole.slice(0, rows))
        rest = whole.slice(rows)
        self._pending = [rest] if rest.height else []
        self._rows = rest.height

    def close(self) -> None:
        if self._writer is None:
            return
        if self._rows:
            self._flush(self._rows)
        self._writer.close()
