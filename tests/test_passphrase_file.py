"""A passphrase file that is not UTF-8 is refused without a byte of the secret."""

from pathlib import Path

import pytest

from ingest.errors import KeyringError
from ingest.keys.session import read_passphrase_file


def test_a_passphrase_file_not_in_utf8_is_refused_without_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "pass.txt"
    path.write_bytes(b"s\xe9cret\xff\n")
    with pytest.raises(KeyringError, match="is not UTF-8 text") as caught:
        read_passphrase_file(path)
    text = str(caught.value)
    assert "0xe9" not in text and "0xff" not in text and "cret" not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
