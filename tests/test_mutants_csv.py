"""The CSV reader's decoding as a sender's file meets it.

Written for the mutants of the decoding functions of ``ingest/readers/csv.py`` that
the other tests let live (``scripts/mutants csv``).
"""

from __future__ import annotations

import codecs

import pytest

from ingest.errors import ReadError
from ingest.readers.csv import read_delimited, sniff_text, split_trailer, to_utf8
from ingest.schema import load_dataset

DATASET = load_dataset("reference")
HEADER = b"CASE_ID,PERS_ID,DOB,SEX,CNTY_FIPS,RPT_DT,DX_CD,LAB_VAL,HOSP_YN,CMNT\r\n"
ROW = b"0000000001,P0000ABCD,01/02/1980,F,01001,03/04/2020,A01.1,1.5,N,\r\n"


@pytest.mark.parametrize(("data", "line"), [
    (b"\x00" + HEADER + ROW, 1),  # the very first byte
    (HEADER + ROW + ROW.replace(b"F", b"\x00") + ROW.replace(b"N,", b"N,\x00"), 3),
    (b"\n" + HEADER + ROW.replace(b"F", b"\x00"), 3),  # the first line is empty
], ids=["first-byte", "third-line", "after-an-empty-first-line"])
def test_a_nul_byte_is_refused_naming_the_line_of_the_first(data: bytes, line: int) -> None:
    with pytest.raises(ReadError) as caught:
        read_delimited(data, DATASET, "cases.csv")
    assert str(caught.value) == (f"cases.csv: holds a NUL byte (line {line}); the file is "
                                 "binary or damaged, ask the sender to export it again")


# --- what the parser is handed: the records as UTF-8, without trailer or blank lines ------

ROWS = b"a,b\r\n1,2"


RECORDS = {  # what arrives: (what the parser is handed, the trailer's count)
    # the last line end is made one LF
    "crlf-end": (ROWS + b"\r\n", ROWS + b"\n", None),
    "no-end": (ROWS, ROWS, None),
    "blank-lines": (ROWS + b"\r\n\r\n\n", ROWS + b"\n", None),
    # more than one 256-byte step back from the end
    "a-thousand-blank-lines": (ROWS + b"\r\n" * 1000, ROWS + b"\n", None),
    # a DOS end-of-file mark on a line of its own is not a row; at the end of a row it
    # is the row's
    "eof-mark-own-line": (ROWS + b"\r\n\x1a", ROWS + b"\n", None),
    "eof-mark-then-blanks": (ROWS + b"\r\n\x1a\r\n\r\n", ROWS + b"\n", None),
    "eof-mark-ending-a-row": (ROWS + b"\x1a", ROWS + b"\x1a", None),
    "eof-mark-alone": (b"\x1a", b"\x1a", None),
    "eof-mark-after-a-break": (b"\n\x1a", b"\n", None),
    "trailer": (ROWS + b"\r\nTOTAL RECORDS: 1\r\n", ROWS + b"\n", 1),
    "trailer-spaces-eof-mark": (ROWS + b"\r\nTOTAL RECORDS: 12 \r\n\x1a  ", ROWS + b"\n", 12),
    "trailer-lf": (ROWS + b"\nrecord_count=7", ROWS + b"\n", 7),
    "trailer-quoted": (ROWS + b'\r\n"TOTAL RECORDS: 3"', ROWS + b"\n", 3),
    "trailer-after-quotes": (b'a,b\r\n1,"2"\r\nTOTAL: 7', b'a,b\r\n1,"2"\n', 7),
    # inside a quoted value still open, a line that reads as a trailer is the value's
    "trailer-like-in-open-quote": (b'a,b\r\n1,"2\r\nTOTAL RECORDS: 1\r\n',
                                   b'a,b\r\n1,"2\r\nTOTAL RECORDS: 1\n', None),
    "trailer-alone": (b"TOTAL RECORDS: 1", b"", 1),
    "trailer-alone-blank-lines": (b"TOTAL RECORDS: 1\r\n\r\n", b"", 1),
    "trailer-after-300-blanks": (ROWS + b"\r\n" + b" " * 300 + b"TOTAL: 5", ROWS + b"\n", 5),
    "trailer-after-a-leading-break": (b"\nTOTAL RECORDS: 1", b"\n", 1),
    "trailer-half-quoted": (ROWS + b'\r\n"TOTAL RECORDS: 3', ROWS + b"\n", 3),
    "trailer-after-a-quoted-header": (b'"a",b\r\n1,2\r\nTOTAL: 3', b'"a",b\r\n1,2\n', 3),
    "trailer-after-quotes-lf": (b'a,b\n1,"2"\nTOTAL: 7', b'a,b\n1,"2"\n', 7),
    # a line that only begins like a trailer, or one with a row after it, is data
    "more-after-the-count": (ROWS + b"\r\nTOTAL: 12 XX", ROWS + b"\r\nTOTAL: 12 XX", None),
    "a-row-after-a-trailer-like-line": (ROWS + b"\r\nTOTAL: 1\r\nX",
                                        ROWS + b"\r\nTOTAL: 1\r\nX", None),
    # a page break or vertical tab after the count is not a trailer's: the line stays
    # data, so its short row is refused naming the line (never cut unseen as a trailer)
    "form-feed-after-the-count": (ROWS + b"\r\nTOTAL: 1\x0c", ROWS + b"\r\nTOTAL: 1\x0c", None),
    "vertical-tab-after-the-count": (ROWS + b"\r\nTOTAL: 1\x0b\r\n",
                                     ROWS + b"\r\nTOTAL: 1\x0b\n", None),
    # the last value's own characters stay, whatever they are
    "last-value-x": (b"a,b\r\n1,X", b"a,b\r\n1,X", None),
    "last-value-trailing-spaces": (ROWS + b"  ", ROWS + b"  ", None),
    "eof-mark-ending-a-row-x": (b"a,b\r\n1,X\x1a", b"a,b\r\n1,X\x1a", None),
    "eof-mark-after-a-trailing-space": (ROWS + b" \r\n\x1a", ROWS + b" \n", None),
    "eof-mark-after-a-row-x": (b"a,b\r\n1,X\r\n\x1a", b"a,b\r\n1,X\n", None),
}


@pytest.mark.parametrize("case", sorted(RECORDS))
def test_the_records_lose_only_their_trailer_and_blank_lines_at_the_end(case: str) -> None:
    data, text, trailer = RECORDS[case]
    assert to_utf8(data, DATASET, "cases.csv") == (text, "utf-8", trailer)


@pytest.mark.parametrize(("text", "body", "count"), [
    ("a,b\r\n1,2\r\nTOTAL RECORDS: 1\r\n\x1a ", "a,b\r\n1,2\r\n", 1),
    ("a,b\n1,2\nrow count = 40", "a,b\n1,2\n", 40),
    ('a,b\r\n1,2\r\n"TOTAL RECORDS: 3"', "a,b\r\n1,2\r\n", 3),
    ("TOTAL: 9", "", 9),
    ('a,b\r\n1,"2\r\nTOTAL RECORDS: 1\r\n', 'a,b\r\n1,"2\r\nTOTAL RECORDS: 1\r\n', None),
    ("a,b\r\n1,2\r\n", "a,b\r\n1,2\r\n", None),
    ("a,b\r\n1,2\r\nTOTAL RECORDS: x\r\n", "a,b\r\n1,2\r\nTOTAL RECORDS: x\r\n", None),
    ('a,b\r\n1,"2"\r\nTOTAL: 7', 'a,b\r\n1,"2"\r\n', 7),
    ('a,b\n1,"2"\nTOTAL: 7', 'a,b\n1,"2"\n', 7),
    ('"a",b\r\n1,2\r\nTOTAL: 3', '"a",b\r\n1,2\r\n', 3),
    ('a,b\r\n1,2\r\n"TOTAL RECORDS: 3', "a,b\r\n1,2\r\n", 3),
    ("a,b\r\nTOTAL: 12 XX", "a,b\r\nTOTAL: 12 XX", None),
    ("a,b\r\nTOTAL: 1\r\nX", "a,b\r\nTOTAL: 1\r\nX", None),
    ("a,b\r\nTOTAL: 1\x0c", "a,b\r\nTOTAL: 1\x0c", None),
], ids=["eof-mark", "lf", "quoted", "alone", "open-quote", "none", "no-count",
        "after-quotes", "after-quotes-lf", "after-a-quoted-header", "half-quoted",
        "more-after-the-count", "a-row-after-it", "form-feed-after-the-count"])
def test_a_trailer_is_split_from_decoded_text(text: str, body: str, count: int | None) -> None:
    assert split_trailer(text) == (body, count)


# --- encodings -----------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "encoding"), [
    (codecs.BOM_UTF8 + "a,b\r\né,2\r\n".encode(), "utf-8-sig"),
    (codecs.BOM_UTF16_LE + "a,b\r\né,2\r\n".encode("utf-16-le"), "utf-16"),
    (codecs.BOM_UTF16_BE + "a,b\r\né,2\r\n".encode("utf-16-be"), "utf-16"),
    ("a,b\r\né,2\r\n".encode(), "utf-8"),
    ("a,b\r\né,2\r\n".encode("cp1252"), "cp1252"),
    ("a,b\r\né,2,€\r\n".encode("cp1252"), "cp1252"),
], ids=["utf8-bom", "utf16-le", "utf16-be", "utf8", "cp1252", "cp1252-euro"])
def test_the_text_is_decoded_as_its_mark_or_the_first_encoding_allowed(
        data: bytes, encoding: str) -> None:
    expected = "a,b\r\né,2,€\n" if "€".encode("cp1252") in data else "a,b\r\né,2\n"
    assert to_utf8(data, DATASET, "cases.csv") == (expected.encode(), encoding, None)


def test_utf8_cut_short_in_a_character_is_not_utf8() -> None:
    # strictly decoded to the end: the last byte begins a character it does not finish
    assert to_utf8(b"a,b\r\n1,\xc3", DATASET, "cases.csv") == (
        "a,b\r\n1,Ã".encode(), "cp1252", None)


@pytest.mark.parametrize(("data", "encoding"), [
    (codecs.BOM_UTF8 + b"a,b\r\n\xff,2\r\n", "utf-8"),
    (codecs.BOM_UTF16_LE + "a,b".encode("utf-16-le") + b"\x00", "utf-16"),
    (codecs.BOM_UTF16_BE + "a,b".encode("utf-16-be") + b"\xd8\x00", "utf-16"),
], ids=["utf8-bom", "utf16-odd-length", "utf16-lone-surrogate"])
def test_text_not_in_the_encoding_its_mark_names_is_refused(data: bytes, encoding: str) -> None:
    with pytest.raises(ReadError) as caught:
        to_utf8(data, DATASET, "cases.csv")
    assert str(caught.value) == (f"cases.csv: marked as {encoding} but not valid {encoding}")


def test_text_in_none_of_the_encodings_is_refused_naming_them() -> None:
    with pytest.raises(ReadError) as caught:
        to_utf8(b"a,b\r\n\x81\xc3,2\r\n", DATASET, "cases.csv")  # 0x81: no cp1252 character
    assert str(caught.value) == ("cases.csv: the text is in none of the encodings the schema "
                                 "allows (utf-8, cp1252); ask the sender which encoding they "
                                 "used")


SAMPLE = 1 << 16
"""The bytes of a large file looked at first for proof that it is not UTF-8."""


@pytest.mark.parametrize("at", [SAMPLE - 5, SAMPLE - 4, SAMPLE - 3, SAMPLE - 2, SAMPLE - 1,
                                SAMPLE, SAMPLE + 100])
def test_a_large_utf8_file_is_utf8_wherever_its_characters_fall(at: int) -> None:
    """Beyond the first 64 KiB sample, and across its end, a character of four bytes
    (bytes that cp1252 would also decode) leaves the file UTF-8."""
    head = b"a,b\r\n"
    filler = b"x" * (at - len(head))
    data = head + filler + "😀".encode() + b",2\r\n" + b"y,3\r\n" * 10
    assert len(data) > SAMPLE
    assert to_utf8(data, DATASET, "cases.csv") == (data[:-2] + b"\n", "utf-8", None)


@pytest.mark.parametrize("at", [100, SAMPLE - 6, SAMPLE + 100])
def test_a_large_cp1252_file_is_cp1252_wherever_its_first_non_utf8_byte_falls(
        at: int) -> None:
    head = b"a,b\r\n"
    data = (head + b"x" * (at - len(head)) + "é".encode("cp1252") + b",2\r\n"
            + b"y,3\r\n" * (SAMPLE // 5))
    assert len(data) > SAMPLE
    assert to_utf8(data, DATASET, "cases.csv") == (
        data[:-2].decode("cp1252").encode() + b"\n", "cp1252", None)


# --- what is taken for delimited text ------------------------------------------------------

@pytest.mark.parametrize(("head", "text"), [
    (codecs.BOM_UTF16_LE + "a,b".encode("utf-16-le"), True),
    (codecs.BOM_UTF16_BE + "a,b".encode("utf-16-be"), True),
    ("a,b".encode("utf-16-le"), False),  # NULs, and no mark to say why
    (b"a,b", True), (b"a\tb", True), (b"a;b", True), (b"a|b", True),
    (b"ab", False), (b"a:b", False),
    (b"a,b" + b"x" * 8188 + b"\x00", False),  # a NUL at the last byte looked at
    (b"a,b" + b"x" * 8189 + b"\x00", True),  # past the part looked at
], ids=["utf16-le", "utf16-be", "utf16-unmarked", "comma", "tab", "semicolon", "bar",
        "no-delimiter", "colon", "nul-at-8191", "nul-at-8192"])
def test_delimited_text_is_told_by_its_first_bytes(head: bytes, text: bool) -> None:
    assert sniff_text(head) is text


def test_a_utf8_file_is_handed_on_as_it_is_not_copied() -> None:
    """A file already in UTF-8 with nothing to trim is the parser's input itself: a
    delivery of gigabytes is not held twice."""
    data = "a,b\r\né,2".encode()
    assert to_utf8(data, DATASET, "cases.csv").text is data
