"""JSON Lines encrypted in the age format, so ``age -d -i identity`` opens it.

The rows are serialised a slice at a time into age's streaming encryption, so
the plaintext JSON never exists whole in memory; the ciphertext goes on to the
sink it is given (the publisher's staging file).
"""

from __future__ import annotations

import io
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import polars as pl
import pyrage

from ..errors import DecryptionError

ROWS_PER_CHUNK = 65536
AHEAD = 2


class _JsonLines(io.RawIOBase):
    """A readable stream of a frame's JSON Lines, made one slice of rows at a time.

    The next slices are serialised in a worker thread (polars releases the GIL)
    while the encryption consumes the current one; at most ``AHEAD`` slices wait.
    """

    def __init__(self, frame: pl.DataFrame, rows: int = ROWS_PER_CHUNK) -> None:
        self._frame = frame
        self._offsets = iter(range(0, frame.height, rows))
        self._rows = rows
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._queue: deque[Future[bytes]] = deque()
        self._chunk = memoryview(b"")
        self._fill()

    def _fill(self) -> None:
        while len(self._queue) < AHEAD and (offset := next(self._offsets, None)) is not None:
            self._queue.append(self._pool.submit(self._serialise, offset))

    def _serialise(self, offset: int) -> bytes:
        sink = io.BytesIO()
        self._frame.slice(offset, self._rows).write_ndjson(sink)
        return sink.getvalue()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._chunk and self._queue:
            self._chunk = memoryview(self._queue.popleft().result())
            self._fill()
        count = min(len(buffer), len(self._chunk))
        buffer[:count] = self._chunk[:count]
        self._chunk = self._chunk[count:]
        return count

    def close(self) -> None:
        for pending in self._queue:
            pending.cancel()
        self._pool.shutdown(wait=True)
        super().close()


def write_jsonl(frame: pl.DataFrame, recipient: object, sink: BinaryIO) -> None:
    """One JSON object per row, sealed to ``recipient``, into ``sink``.

    Integers are JSON integers; dates, datetimes and times ISO 8601 (a UTC datetime
    with ``+00:00``, a naive one without an offset); decimals strings of their
    exact digits (``"12.30"``: a JSON number would be read back as a float).
    """
    with io.BufferedReader(_JsonLines(json_ready(frame)), buffer_size=1 << 20) as rows:
        encrypt_into(rows, recipient, sink)


def json_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with naive datetimes spelled ISO 8601 (polars writes a space for the
    ``T``); every other type is written by polars as it is."""
    naive = [name for name, dtype in frame.schema.items()
             if isinstance(dtype, pl.Datetime) and dtype.time_zone is None]
    if not naive:
        return frame
    return frame.with_columns(pl.col(naive).dt.to_string(ISO_NAIVE))


ISO_NAIVE = "%Y-%m-%dT%H:%M:%S%.f"


class _Sink:
    """Keeps the OSError a sink raised: pyrage reports it as its own EncryptError."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.failed: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._sink.write(data)
        except OSError as exc:
            self.failed = exc
            raise

    def flush(self) -> None:
        self._sink.flush()


def encrypt_into(source: BinaryIO, recipient: object, sink: BinaryIO) -> None:
    """``source`` sealed to ``recipient`` as a stream into ``sink``; a sink that fails
    (a full disk) raises its own OSError, which the publisher reports as such.

    pyrage turns the sink's error into its EncryptError, and drops it altogether
    when the failing write is its last (the whole of a small output): neither may
    pass for a written output.
    """
    kept = _Sink(sink)
    try:
        pyrage.encrypt_io(source, kept, [recipient])
    except pyrage.EncryptError:
        if kept.failed is None:
            raise
    if kept.failed is not None:
        raise kept.failed from None


def decrypt_jsonl(data: bytes, identity: object, name: str = "file") -> pl.DataFrame:
    try:
        plain = pyrage.decrypt(data, [identity])
    except pyrage.DecryptError:
        raise DecryptionError(f"{name}: cannot be decrypted: wrong identity, tampered or "
                              "truncated") from None
    if not plain:
        return pl.DataFrame()
    return pl.read_ndjson(io.BytesIO(plain), infer_schema_length=None)
