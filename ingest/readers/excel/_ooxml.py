"""OOXML spelling: cell references, rich-text runs, shared-string entries in raw bytes."""

from __future__ import annotations

import re
from xml.etree import ElementTree

_NAME = rb"[^\s<>/:!?=\"']+"
"""An XML name part: a namespace prefix, of any length and spelling."""
_SST_ENTRY = re.compile(rb"<(?:" + _NAME + rb":)?si[\s>/]")
"""The start of a shared-string entry (``<si>``, ``<x:si>``, ``<si/>``)."""

_CELL_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
"""OOXML writes control characters in text as ``_x000D_``; calamine reads them back."""


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _column_number(ref: str) -> int:
    """``A1`` -> 0, ``AB7`` -> 27; -1 if the reference is not a cell."""
    letters = re.match(r"([A-Z]{1,3})[0-9]+$", ref)
    if not letters:
        return -1
    number = 0
    for letter in letters.group(1):
        number = number * 26 + ord(letter) - 64
    return number - 1


def _run_text(element: ElementTree.Element) -> str:
    """The text of an ``<si>`` or ``<is>``: its ``<t>`` and rich-text runs, no phonetics."""
    out = []
    for child in element:
        tag = _local(child.tag)
        if tag == "t":
            out.append(child.text or "")
        elif tag == "r":
            out.extend(t.text or "" for t in child if _local(t.tag) == "t")
    return _CELL_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), "".join(out))


_PREFIX = re.compile(rb"<(/?)" + _NAME + rb":")
_SST_PREFIXED = re.compile(rb"<" + _NAME + rb":si[\s>/]")
_SPELLED_NUMBER = re.compile(
    rb">(?=[-+.0-9iInN])([+-]?(?:[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN]"
    rb"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?))(?:</|\Z)")
"""Text that calamine's number load parses (Rust's float syntax), ended by a tag."""
_ENTRY_START = re.compile(rb"<(?:" + _NAME + rb":)?si>\s*<(?:" + _NAME
                          + rb":)?t(?:\s[^>]*)?>\Z")
_ENTRY_END = re.compile(rb"</(?:" + _NAME + rb":)?t>\s*</(?:" + _NAME + rb":)?si>")


def _entry_count(buffer: bytes | bytearray, end: int, start: int = 0) -> int:
    """Shared-string entries starting in ``buffer[start:end]``; more, never fewer.

    No other element of the table starts with ``si``, and text holds ``<`` only
    escaped, so counting ``<si`` is exact for an honest table, and fast.
    """
    count = buffer.count(b"<si", start, end)
    if buffer.find(b":si", start, end) >= 0:
        count += len(_SST_PREFIXED.findall(buffer, start, end))
    return count


def _entry_starts(buffer: bytes | bytearray, end: int, wanted: set[int]) -> dict[int, int]:
    """Where the ``wanted`` entries (counted from the first in ``buffer``) start.

    Counted a block at a time, and looked through only in the blocks that hold one.
    """
    starts: dict[int, int] = {}
    index = block = 0
    while block < end and len(starts) < len(wanted):
        stop = min(block + (1 << 16), end)
        if stop < end:
            # blocks end at a "<", so no entry's start straddles two
            seam = buffer.rfind(b"<", block + 1, stop)
            stop = seam if seam > block else stop
        found = _entry_count(buffer, stop, block)
        if any(index <= k < index + found for k in wanted):
            for k, match in enumerate(_SST_ENTRY.finditer(buffer, block, stop), start=index):
                if k in wanted:
                    starts[k] = match.start()
        index += found
        block = stop
    return starts


def _entry_text(fragment: bytes) -> str | None:
    """The text of one ``<si>`` entry cut from the shared-string table."""
    try:
        root = ElementTree.fromstring(b"<root>" + _PREFIX.sub(rb"<\1", fragment) + b"</root>")
    except ElementTree.ParseError:
        return None
    return _run_text(root[0]) if len(root) else None
