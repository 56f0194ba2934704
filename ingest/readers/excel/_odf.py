"""An OpenDocument spreadsheet's layout whitespace, taken out in memory for calamine.

Gnumeric indents its ``content.xml`` (a newline and spaces between the table's
elements), which calamine cannot parse: it refuses the file as no spreadsheet.
In OpenDocument, whitespace directly inside a ``table:`` or ``office:`` element
is layout, never content: a cell's text lives in its ``text:p`` paragraphs (and
typed values in attributes), which this leaves byte for byte as they are. So
the whitespace-only runs whose parent is a ``table:`` or ``office:`` element
are dropped, nothing else; the package is rebuilt in memory, never on disk.

Anything unexpected (a document type declaration, a tag that does not close as
it opened, a part too large) and the file is left as it is: calamine's refusal
then stands.
"""

from __future__ import annotations

import io
import re
import zipfile

_TOKEN = re.compile(
    rb"<(?:!--.*?-->|!\[CDATA\[.*?\]\]>|\?.*?\?>|!|"
    rb"(/?)([^\s/>!?]+)((?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*(/?)>)",
    re.DOTALL)
"""A markup token: comment, CDATA, processing instruction, ``<!`` (refused), or a tag
(end mark, name, attributes, empty mark); attribute values may hold ``>``."""
_LAYOUT_PARENTS = (b"table:", b"office:")
_WHITESPACE = b" \t\r\n"
_CONTENT_MAX = 1 << 30
"""The largest content.xml rebuilt (calamine would hold as much)."""
_DEFLATE_MAX_RATIO = 1032


def without_layout_whitespace(data: bytes) -> bytes | None:
    """The package with ``content.xml``'s layout whitespace dropped; None when it had
    none, or when the part is not what this expects."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            infos = package.infolist()
            content = next((i for i in infos if i.filename == "content.xml"), None)
            if content is None or content.file_size > min(
                    _CONTENT_MAX, _DEFLATE_MAX_RATIO * max(content.compress_size, 1)):
                return None
            xml = _normalised(package.read(content))
            if xml is None:
                return None
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as rebuilt:
                for info in infos:
                    body = xml if info is content else package.read(info)
                    rebuilt.writestr(info, body, compress_type=info.compress_type,
                                     compresslevel=1)
            return out.getvalue()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError):
        return None


def _normalised(xml: bytes) -> bytes | None:
    """``xml`` without whitespace-only text directly inside table: and office: elements."""
    out: list[bytes] = []
    stack: list[bytes] = []
    at = 0
    changed = False
    for token in _TOKEN.finditer(xml):
        text = xml[at:token.start()]
        if text:
            if stack and stack[-1].startswith(_LAYOUT_PARENTS) and not text.strip(_WHITESPACE):
                changed = True
            else:
                out.append(text)
        end, name, _, empty = token.groups()
        if token.group(0) == b"<!" or token.group(0).startswith(b"<!DOCTYPE"):
            return None  # a document type: entities are not this code's to expand
        if name is not None and not empty:
            if end:
                if not stack or stack.pop() != name:
                    return None
            else:
                stack.append(name)
        out.append(token.group(0))
        at = token.end()
    if stack or xml.find(b"<", at) >= 0:
        return None
    out.append(xml[at:])
    return b"".join(out) if changed else None
