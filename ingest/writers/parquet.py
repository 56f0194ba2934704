"""Parquet Modular Encryption: AES-GCM, encrypted footer, a master key per column class.

pyarrow's CryptoFactory makes a fresh data key for every file and column and has
the KMS (:mod:`ingest.keys.kms`) wrap it: restricted columns under the
"restricted" master key, every other column and the footer under "general".
The wrapped keys live in a small key-material file beside the Parquet file
(``_KEY_MATERIAL_FOR_<name>.json``, pyarrow's external key material), so a
master key can be rotated by re-wrapping them, without rewriting the data.

Each file is bound to its delivery: the delivery's SHA-256 sits in the
encrypted, authenticated footer, and readers check it against the manifest, so
a file moved from one delivery's folder to another's is detected.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import BinaryIO

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe

from ..errors import KeyringError, OutputError
from ..keys import Keyring

PARQUET_ENCRYPTED_MAGIC = b"PARE"
KEY_MATERIAL_PREFIX = "_KEY_MATERIAL_FOR_"
META_DELIVERY = b"ingest.delivery_sha256"
META_RESTRICTED = b"ingest.restricted_columns"


def key_material_name(parquet_name: str) -> str:
    return f"{KEY_MATERIAL_PREFIX}{parquet_name}.json"


ROWS_PER_GROUP = 128 * 1024


def unlistable(names: list[str]) -> list[str]:
    """The names of ``names`` that cannot be encrypted in Parquet: Parquet Modular
    Encryption lists a key's columns as one text, split at ``,`` ``;`` ``:`` and trimmed,
    so pyarrow would encrypt a column of another name, or refuse the list."""
    return [n for n in names if n != n.strip() or any(c in n for c in ",;:")]


def unlistable_refusal(names: list[str]) -> str | None:
    """Why ``names`` cannot all be encrypted in Parquet, naming the columns; None if
    they can."""
    refused = unlistable(names)
    if not refused:
        return None
    return (f"column {', '.join(map(repr, refused))} cannot be encrypted in Parquet: "
            "Parquet Modular Encryption lists a key's columns by name, split at ',', ';' "
            "and ':' and trimmed of spaces")


def write_parquet(frame: pl.DataFrame, keyring: Keyring, restricted: list[str], name: str,
                  delivery_sha256: str, sink: BinaryIO) -> bytes:
    """Write the encrypted Parquet file into ``sink``; returns its key material.

    The frame goes to Arrow one row group at a time, so no Arrow copy of the
    whole table is made.
    """
    writer, material = encrypted_writer(frame.head(0), keyring, restricted, name,
                                        delivery_sha256, sink)
    with writer:
        for offset in range(0, frame.height, ROWS_PER_GROUP):
            writer.write_frame(frame.slice(offset, ROWS_PER_GROUP))
    return material


class EncryptedWriter:
    """A Parquet file being written, a row group per :meth:`write_frame` call.

    The file's metadata (the delivery's hash, the restricted columns) is the writer's
    schema's: pyarrow writes it once, in the footer, whatever the frames carry.
    """

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self._writer = writer

    def write_frame(self, frame: pl.DataFrame) -> None:
        self._writer.write_table(frame.to_arrow(), ROWS_PER_GROUP)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> EncryptedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encrypted_writer(empty: pl.DataFrame, keyring: Keyring, restricted: list[str], name: str,
                     delivery_sha256: str, sink: BinaryIO) -> tuple[EncryptedWriter, bytes]:
    """An encrypted Parquet writer for frames shaped like ``empty``, and its key material.

    pyarrow writes the key material when the file's keys are made, before the
    first byte of data; it is caught in a private in-memory file system and
    returned, to be stored beside the file as ``key_material_name(name)``.
    """
    from fsspec.implementations.memory import MemoryFileSystem

    if why := unlistable_refusal(empty.columns):
        raise OutputError(f"{name}: {why}")
    restricted = [c for c in empty.columns if c in restricted]
    general = [c for c in empty.columns if c not in restricted]
    # a role without columns is left out: pyarrow refuses an empty list of columns
    column_keys = {role: columns for role, columns in
                   (("general", general), ("restricted", restricted)) if columns}
    config = pe.EncryptionConfiguration(
        footer_key="general", column_keys=column_keys, encryption_algorithm="AES_GCM_V1",
        plaintext_footer=False, double_wrapping=True, internal_key_material=False)
    schema = empty.to_arrow().schema
    meta = dict(schema.metadata or {})
    meta[META_DELIVERY] = delivery_sha256.encode()
    meta[META_RESTRICTED] = json.dumps(restricted).encode()  # a name may hold a comma
    schema = schema.with_metadata(meta)

    memory = MemoryFileSystem()
    fs = pafs.PyFileSystem(pafs.FSSpecHandler(memory))
    folder = f"/ingest-{secrets.token_hex(8)}"
    try:
        factory = pe.CryptoFactory(keyring.kms_factory())
        props = factory.file_encryption_properties(pe.KmsConnectionConfig(), config,
                                                   f"{folder}/{name}", fs)
        material = memory.cat(f"{folder}/{key_material_name(name)}")
    finally:
        if memory.exists(folder):  # not when pyarrow refused before writing anything
            memory.rm(folder, recursive=True)
    writer = pq.ParquetWriter(sink, schema, encryption_properties=props, compression="zstd")
    return EncryptedWriter(writer), material


def read_parquet(path: Path, keyring: Keyring, columns: list[str] | None = None,
                 delivery_sha256: str | None = None) -> pa.Table:
    """Decrypt and read ``columns`` (default all) of an encrypted output file.

    With ``delivery_sha256`` the file must belong to that delivery.
    """
    pf = open_parquet(path, keyring)
    wanted = check_access(pf, path, keyring, columns, delivery_sha256)
    try:
        table = pf.read(columns=wanted)
    except OSError as exc:
        raise _explain(path, exc) from None
    return table.replace_schema_metadata(None)  # the file's own, and polars writes none


def check_access(pf: pq.ParquetFile, path: Path, keyring: Keyring,
                 columns: list[str] | None, delivery_sha256: str | None) -> list[str]:
    """The columns to read, once the file is shown to be this delivery's and the
    keyring is shown to hold the keys they need."""
    meta = pf.schema_arrow.metadata or {}
    if delivery_sha256 and meta.get(META_DELIVERY) != delivery_sha256.encode():
        raise OutputError(f"{path}: this file belongs to another delivery than its "
                          "folder's manifest says; outputs were moved or swapped")
    names = pf.schema_arrow.names
    wanted = list(columns) if columns is not None else names
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise OutputError(f"{path.name}: no column {', '.join(unknown)}")
    restricted = _restricted(meta)
    if "restricted" not in keyring.current_master_keys():
        denied = [c for c in wanted if c in restricted]
        if denied:
            readable = [c for c in names if c not in restricted]
            raise KeyringError(
                f"not authorised for column {', '.join(denied)}: this keyring holds only "
                "the general master key; " + (f"ask for columns {', '.join(readable)}"
                                              if readable else "every column is restricted"))
    return wanted


def _restricted(meta: dict[bytes, bytes]) -> list[str]:
    """The restricted columns a file names: a JSON list (earlier files: the names joined
    by commas); none in a file this tool did not write, which has nothing to deny."""
    if META_RESTRICTED not in meta:
        return []
    listed = meta[META_RESTRICTED].decode()
    return json.loads(listed) if listed.startswith("[") else [c for c in listed.split(",") if c]


def iter_parquet(path: Path, keyring: Keyring, columns: list[str] | None,
                 delivery_sha256: str | None, batch_size: int = 65536):
    """Record batches of ``columns`` only, decrypted one row group at a time."""
    pf = open_parquet(path, keyring)
    wanted = check_access(pf, path, keyring, columns, delivery_sha256)
    try:
        yield from pf.iter_batches(batch_size=batch_size, columns=wanted)
    except OSError as exc:
        raise _explain(path, exc) from None


def open_parquet(path: Path, keyring: Keyring) -> pq.ParquetFile:
    factory = pe.CryptoFactory(keyring.kms_factory())
    try:
        props = factory.file_decryption_properties(pe.KmsConnectionConfig(),
                                                   pe.DecryptionConfiguration(), str(path))
        return pq.ParquetFile(path, decryption_properties=props)
    except (OSError, pa.ArrowException) as exc:  # not Parquet, key material not JSON
        raise _explain(path, exc) from None


def rotate_parquet(path: Path, keyring: Keyring) -> None:
    """Re-wrap the file's keys under the keyring's current master keys (no data rewrite)."""
    factory = pe.CryptoFactory(keyring.kms_factory())
    try:
        factory.rotate_master_keys(pe.KmsConnectionConfig(), str(path), double_wrapping=True,
                                   cache_lifetime_seconds=1)
    except (OSError, pa.ArrowException) as exc:
        raise _explain(path, exc) from None
    material = path.with_name(key_material_name(path.name))
    material.chmod(0o600)


def _explain(path: Path, exc: Exception) -> Exception:
    """What went wrong, from the error pyarrow or the KMS (:mod:`ingest.keys.kms`) raised."""
    text = str(exc)
    if "not authorised" in text:  # the KMS: no such master key here
        return KeyringError(f"{path.name}: not authorised: this keyring lacks the master key "
                            "it was encrypted with (a retired or another site's key)")
    if "does not unwrap" in text:
        return OutputError(f"{path.name}: its key material was altered; restore the output "
                           "from backup or re-run the delivery with --force")
    if "Invalid key id" in text:  # the material names none of the file's keys
        return OutputError(f"{path.name}: its key material file "
                           f"{key_material_name(path.name)} does not hold this file's keys "
                           "(damaged, or another file's)")
    if ("Failed to parse key material" in text or "No such file" in text
            or isinstance(exc, pa.ArrowKeyError | pa.ArrowTypeError)  # JSON, wrong shape
            or (isinstance(exc, pa.ArrowInvalid) and "JSON" in text)):  # not JSON
        return OutputError(f"{path.name}: its key material file "
                           f"{key_material_name(path.name)} is missing or damaged")
    return OutputError(f"{path.name}: cannot be decrypted: damaged, tampered, or not an "
                       "output of this tool")
