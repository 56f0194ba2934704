"""Zoned and packed decimal fields, decoded over a whole column at once.

A fixed-length record from a mainframe keeps numbers as COBOL wrote them:

- **zoned decimal** (``PIC S9(n)``, SAS ``ZDw.d``): one digit a byte, the digit in
  the low nibble, ``F`` in the high (zone) nibble, except the last byte, whose zone
  is the sign (``C`` or ``F`` positive, ``D`` negative). In EBCDIC the digits are
  ``F0``-``F9``; in ASCII files the zone is ``3`` (``30``-``39``).
- **packed decimal** (``COMP-3``, SAS ``PDw.d``): two digits a byte, the last
  nibble the sign (``C``/``F`` positive, ``D`` negative).

The column arrives as a byte matrix (one row a record); numpy reads every
nibble at once, so a million records cost a few array operations, never a
Python loop. The value goes out as exact decimal text (``-1234.56`` for scale 2),
which the column's kind parses as it parses any text: no float is ever made.
A field of blanks (or zeros bytes) is null; a field with a nibble that is not a
digit, or a sign nibble that is no sign, is :data:`INVALID`, which no kind
parses, so its row is quarantined with the kind's reason and never altered.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..errors import SchemaMismatchError

INVALID = "#invalid-number"
"""What a field that is no zoned or packed number reads as (no kind parses it)."""
MAX_DIGITS = 18
"""The most digits a field may hold: the value is computed in int64."""
_POSITIVE = (0xC, 0xF, 0xA, 0xE)
_NEGATIVE = (0xD, 0xB)


def digits_of(storage: str, length: int) -> int:
    """How many digits a field of ``length`` bytes holds."""
    return length if storage == "zoned" else 2 * length - 1


def check_width(storage: str, length: int, where: str) -> None:
    if digits_of(storage, length) > MAX_DIGITS:
        raise SchemaMismatchError(f"{where}: a {storage} decimal field of {length} bytes holds "
                                  f"more than {MAX_DIGITS} digits; split the field or declare "
                                  "it as text")


def decode_numbers(field: np.ndarray, storage: str, scale: int,
                   blank: int) -> pl.Series:
    """The field matrix (records x bytes, uint8) as decimal text, one value a record.

    ``blank`` is the code page's space (0x40 in EBCDIC, 0x20 in ASCII).
    """
    if storage == "zoned":
        zone, digit = field >> 4, field & 0x0F
        body_ok = (zone[:, :-1] == 0xF) | (zone[:, :-1] == 0x3)
        digits = digit
        sign = zone[:, -1]
        # an ASCII zoned field has zone 3 on every byte; its last is then unsigned
        sign = np.where(sign == 0x3, 0xF, sign)
    else:
        high, low = field >> 4, field & 0x0F
        digits = np.stack([high, low], axis=2).reshape(field.shape[0], -1)[:, :-1]
        sign = low[:, -1]
        body_ok = np.ones((field.shape[0], 0), dtype=bool)
    ok = body_ok.all(axis=1) & (digits <= 9).all(axis=1) \
        & np.isin(sign, _POSITIVE + _NEGATIVE)
    empty = (field == blank).all(axis=1) | (field == 0).all(axis=1)
    weights = 10 ** np.arange(digits.shape[1] - 1, -1, -1, dtype=np.int64)
    magnitude = (np.where(digits <= 9, digits, 0).astype(np.int64) * weights).sum(axis=1)
    negative = np.isin(sign, _NEGATIVE)
    text = pl.Series(magnitude).cast(pl.Utf8)
    frame = pl.DataFrame({"m": text, "neg": negative, "ok": ok, "empty": empty})
    m = pl.col("m")
    if scale > 0:
        padded = m.str.zfill(scale + 1)
        m = padded.str.slice(0, padded.str.len_chars() - scale) + pl.lit(".") \
            + padded.str.slice(-scale)
    value = pl.when(pl.col("neg")).then(pl.lit("-") + m).otherwise(m)
    out = frame.select(
        pl.when(pl.col("empty")).then(pl.lit(None, pl.Utf8))
        .when(~pl.col("ok")).then(pl.lit(INVALID)).otherwise(value).alias("v"))
    return out.to_series()


def encode_zoned(value: int, length: int, ebcdic: bool = True) -> bytes:
    """One zoned field (for samples and tests; the reader never encodes)."""
    digits = str(abs(value)).rjust(length, "0")
    if len(digits) > length:
        raise ValueError("value too long for the field")
    zone = 0xF0 if ebcdic else 0x30
    body = bytes(zone | int(d) for d in digits[:-1])
    return body + bytes([(0xD0 if value < 0 else 0xC0) | int(digits[-1])])


def encode_packed(value: int, length: int) -> bytes:
    """One packed field (for samples and tests)."""
    digits = str(abs(value)).rjust(2 * length - 1, "0")
    if len(digits) > 2 * length - 1:
        raise ValueError("value too long for the field")
    nibbles = [int(d) for d in digits] + [0xD if value < 0 else 0xC]
    return bytes(nibbles[i] << 4 | nibbles[i + 1] for i in range(0, len(nibbles), 2))
