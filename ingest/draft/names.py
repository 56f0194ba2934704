"""Clean snake_case column names from whatever a header holds."""

from __future__ import annotations

import keyword
import re
import unicodedata

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_WORD = re.compile(r"[^0-9a-zA-Z]+")


def snake_case(header: str) -> str:
    """``"Date of Birth"``, ``"dateOfBirth"``, ``"DATE-OF-BIRTH"`` -> ``date_of_birth``;
    accents folded (``"Año"`` -> ``ano``), other characters to ``_``; may be empty."""
    ascii_text = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode()
    split = _CAMEL.sub("_", ascii_text.strip())
    return _NOT_WORD.sub("_", split).strip("_").lower()


def clean_names(headers: list[str], reserved: set[str] | frozenset[str] = frozenset()
                ) -> list[str]:
    """One distinct Python identifier per header, in order.

    A name that starts with a digit gets a ``c_`` prefix; an empty one (a header of
    symbols or of a script with no ASCII spelling) becomes ``column_<n>``; a name
    that is a keyword or in ``reserved`` (the model class's own attributes) gets a
    ``_col`` suffix; repeats get ``_2``, ``_3``.
    """
    out: list[str] = []
    taken: set[str] = set()
    for position, header in enumerate(headers, start=1):
        name = snake_case(header) or f"column_{position}"
        if name[0].isdigit():
            name = "c_" + name
        if keyword.iskeyword(name) or name in reserved:
            name += "_col"
        base, n = name, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        out.append(name)
    return out


def class_name(dataset: str) -> str:
    """``"flight delays"`` -> ``FlightDelays``: the model class's name."""
    words = [w for w in snake_case(dataset).split("_") if w]
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Table"
    return "T" + name if name[0].isdigit() else name
