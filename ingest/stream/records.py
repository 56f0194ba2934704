"""Delimited text cut into record batches, in bounded memory.

The bytes are decoded as :mod:`ingest.readers.csv` decodes a whole member (a
byte-order mark decides, else the schema's encodings strictly, in order),
turned into UTF-8 and cut only where a record ends: at a line end outside
quotes (a quoted value may hold line breaks). The last non-blank line is held
back until the end, where a record-count trailer, blank lines and a DOS
end-of-file mark are taken off exactly as the in-memory reader takes them off.

When the text turns out not to be in the encoding being tried (a byte late in
the file), :class:`WrongEncoding` says which encodings are left: the caller
starts again with them, as the in-memory reader would have decided on the
whole text.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import ReadError
from ..readers import csv as _csv

_HEAD = (1 << 16) + 1
"""Bytes read before the encoding is chosen: as many as the in-memory reader's
UTF-8 pre-check looks at, and one more (it looks only at longer texts)."""
_BOMS = {codecs.BOM_UTF8: "utf-8-sig", codecs.BOM_UTF16_LE: "utf-16",
         codecs.BOM_UTF16_BE: "utf-16"}


class WrongEncoding(Exception):  # noqa: N818 - a signal to start again, not an error
    """The text is not in the encoding tried; ``remaining`` are the ones left."""

    def __init__(self, remaining: tuple[str, ...]) -> None:
        super().__init__("encoding")
        self.remaining = remaining


@dataclass(frozen=True)
class Batch:
    text: bytes
    """Whole records, UTF-8, without the header."""
    first_line: int
    """The line of the member its first record starts on."""


class Records:
    """The member's header and record batches of about ``batch_bytes`` each.

    After the batches are consumed, ``encoding`` and ``trailer`` say what the
    in-memory reader's :class:`~ingest.readers.csv.Utf8Text` would say.
    """

    def __init__(self, blocks: Iterator[bytes], encodings: tuple[str, ...], member: str,
                 batch_bytes: int) -> None:
        self._blocks = blocks
        self._member = member
        self._batch = max(batch_bytes, 1)
        self._encodings = encodings
        self.encoding = ""
        self.trailer: int | None = None
        self.header = b""
        self._lines = 0  # line ends in the UTF-8 text before the buffer
        self._quotes = 0  # quotes before the buffer

    # -- decoding ----------------------------------------------------------------------
    def _utf8_chunks(self) -> Iterator[bytes]:
        head = b""
        for block in self._blocks:
            head += block
            if len(head) >= _HEAD:
                break
        encoding, remaining = self._choose(head)
        self.encoding = encoding
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        as_is = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
        first = True
        for block in chained(head, self._blocks):
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError:
                raise self._undecodable(encoding, remaining) from None
            if as_is:
                if first and block.startswith(codecs.BOM_UTF8):
                    block = block[len(codecs.BOM_UTF8):]
                out = block
            else:
                out = text.encode("utf-8")
            first = False
            yield out
        try:
            tail = decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise self._undecodable(encoding, remaining) from None
        if tail and not as_is:
            yield tail.encode("utf-8")

    def _choose(self, head: bytes) -> tuple[str, tuple[str, ...]]:
        for bom, encoding in _BOMS.items():
            if head.startswith(bom):
                return encoding, ()
        for i, encoding in enumerate(self._encodings):
            if codecs.lookup(encoding).name == "utf-8" and \
                    _csv._not_utf8_from_the_start(head):
                continue
            return encoding, self._encodings[i + 1:]
        raise self._none_fits()

    def _undecodable(self, encoding: str, remaining: tuple[str, ...]) -> Exception:
        if encoding in _BOMS.values():
            name = encoding.removesuffix("-sig")
            return ReadError(f"{self._member}: marked as {name} but not valid {name}")
        if remaining:
            return WrongEncoding(remaining)
        return self._none_fits()

    def _none_fits(self) -> ReadError:
        return ReadError(f"{self._member}: the text is in none of the encodings the schema "
                         f"allows ({', '.join(self._all)}); ask the sender which encoding "
                         "they used")

    @property
    def _all(self) -> tuple[str, ...]:
        return getattr(self, "_given", self._encodings)

    def given(self, encodings: tuple[str, ...]) -> Records:
        """Name all the schema's encodings in messages (a later attempt tries fewer)."""
        self._given = encodings
        return self

    # -- cutting -----------------------------------------------------------------------
    def batches(self) -> Iterator[Batch]:
        buffer = b""
        chunks = self._utf8_chunks()
        for chunk in chunks:
            self._refuse_nul(buffer, chunk)
            buffer += chunk
            if not self.header:
                buffer = self._take_header(buffer)
                if not self.header:
                    continue
            if len(buffer) >= self._batch:
                cut = _record_end(buffer, self._quotes)
                if cut:
                    yield self._emit(buffer[:cut])
                    buffer = buffer[cut:]
        if not self.header:
            buffer = self._take_header(buffer, final=True)
        last = self._last(buffer)
        if last.strip(b"\r\n"):
            yield self._emit(last)

    def _take_header(self, buffer: bytes, final: bool = False) -> bytes:
        start = len(buffer) - len(buffer.lstrip(b"\r\n"))
        end = _first_record_end(buffer, start)
        if end is None:
            if not final:
                return buffer
            end = len(buffer)
        self.header = buffer[start:end] if buffer[end - 1:end] == b"\n" \
            else buffer[start:end] + b"\n"
        self._lines += buffer.count(b"\n", 0, end)
        self._quotes += buffer.count(b'"', start, end)
        return buffer[end:]

    def _emit(self, text: bytes) -> Batch:
        batch = Batch(text, self._lines + 1)
        self._lines += text.count(b"\n")
        self._quotes += text.count(b'"')
        return batch

    def _last(self, tail: bytes) -> bytes:
        """The held-back end, as :func:`ingest.readers.csv.to_utf8` leaves a text's end:
        without a record-count trailer, blank lines or a DOS end-of-file mark."""
        body_end = _csv._stripped_end(tail, len(tail), b"\r\n\x1a ")
        cut = tail.rfind(b"\n", 0, body_end)
        last = tail[cut + 1:body_end].decode("utf-8")
        match = _csv._TRAILER.match(last.strip("\r"))
        end = len(tail)
        # a line inside a quoted field is not a trailer (the quotes before it, counted
        # from the start of the text, must be even)
        if match and (self._quotes + tail.count(b'"', 0, cut + 1)) % 2 == 0:
            end, self.trailer = cut + 1, int(match.group(1))
        return _csv._without_trailing_blank_lines(tail, end)

    def _refuse_nul(self, buffer: bytes, chunk: bytes) -> None:
        at = chunk.find(b"\x00")
        if at >= 0:
            line = self._lines + buffer.count(b"\n") + chunk.count(b"\n", 0, at) + 1
            raise ReadError(f"{self._member}: holds a NUL byte (line {line}); the file is "
                            "binary or damaged, ask the sender to export it again")


def peek(blocks: Iterator[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    """At least the first ``size`` bytes (fewer only if there are no more), and
    every byte again, from the first."""
    head = b""
    for block in blocks:
        head += block
        if len(head) >= size:
            break
    return head, chained(head, blocks)


def chained(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


def _first_record_end(buffer: bytes, start: int) -> int | None:
    """Just past the first line end outside quotes at or after ``start``."""
    at = buffer.find(b"\n", start)
    while at >= 0:
        if buffer.count(b'"', start, at) % 2 == 0:
            return at + 1
        at = buffer.find(b"\n", at + 1)
    return None


def _record_end(buffer: bytes, quotes_before: int) -> int:
    """Just past the last line end outside quotes that comes before the last
    non-blank line (held back: it may be a trailer); 0 if there is none."""
    content_end = _csv._stripped_end(buffer, len(buffer), b"\r\n\x1a ")
    at = buffer.rfind(b"\n", 0, content_end)
    while at >= 0:
        if (quotes_before + buffer.count(b'"', 0, at)) % 2 == 0:
            return at + 1
        at = buffer.rfind(b"\n", 0, at)
    return 0
