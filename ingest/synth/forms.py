"""Write a synthesised table the way an agency's tools export it."""

from __future__ import annotations

import polars as pl


def to_delimited(frame: pl.DataFrame, *, separator: str = ",", encoding: str = "cp1252",
                 crlf: bool = True, trailer: bool = True, bom: bool = False) -> bytes:
    """CSV/TSV bytes: quoted, CRLF, optional ``TOTAL RECORDS: N`` trailer or a BOM."""
    newline = "\r\n" if crlf else "\n"
    text = frame.write_csv(None, separator=separator, quote_style="always",
                           line_terminator=newline)
    if trailer:
        text += f"TOTAL RECORDS: {frame.height}{newline}"
    data = text.encode(encoding)
    if bom:
        data = ({"utf-8": b"\xef\xbb\xbf"}.get(encoding, b"")) + data
    return data
