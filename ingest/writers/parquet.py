"""Parquet Modular Encryption: AES-GCM, encrypted footer, a key per column class.

pyarrow's CryptoFactory makes a fresh data key for every file and column and has
the KMS (:mod:`ingest.keys.kms`) wrap it with a master key: restricted columns
under the restricted master key, every other column and the footer under the
general one. The wrapped keys travel inside the file; master keys never do.
"""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe

from ..errors import KeyringError, OutputError
from ..keys import Keyring
from ..keys.kms import crypto_factory

PARQUET_ENCRYPTED_MAGIC = b"PARE"


def encrypt_parquet(table: pa.Table, keyring: Keyring, restricted: list[str]) -> bytes:
    """The table as encrypted Parquet bytes (written to memory, then published)."""
    general = keyring.master_key("general")
    secret = keyring.master_key("restricted")
    keys = {general.id: general, secret.id: secret}
    column_keys = {general.id: [c for c in table.column_names if c not in restricted]}
    if restricted:
        column_keys[secret.id] = [c for c in table.column_names if c in restricted]
    config = pe.EncryptionConfiguration(
        footer_key=general.id,
        column_keys={k: v for k, v in column_keys.items() if v},
        encryption_algorithm="AES_GCM_V1",
        plaintext_footer=False,
        double_wrapping=True,
        internal_key_material=True,
    )
    props = crypto_factory(keys).file_encryption_properties(pe.KmsConnectionConfig(), config)
    sink = io.BytesIO()
    pq.write_table(table, sink, encryption_properties=props, compression="zstd",
                   row_group_size=128 * 1024)
    return sink.getvalue()


def decryption_properties(keyring: Keyring) -> pe.FileDecryptionProperties:
    factory = crypto_factory(keyring.master_keys_by_id())
    return factory.file_decryption_properties(pe.KmsConnectionConfig(),
                                             pe.DecryptionConfiguration())


def read_parquet(path: Path, keyring: Keyring, columns: list[str] | None = None) -> pa.Table:
    """Decrypt and read ``columns`` (default all) of an encrypted output file."""
    props = decryption_properties(keyring)
    try:
        pf = pq.ParquetFile(path, decryption_properties=props)
    except OSError as exc:
        raise _explain(path, exc) from None
    names = pf.schema_arrow.names
    wanted = columns or names
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise OutputError(f"{path.name}: no column {', '.join(unknown)}")
    try:
        return pf.read(columns=wanted)
    except OSError as exc:
        raise _explain(path, exc, wanted) from None


def _explain(path: Path, exc: OSError, columns: list[str] | None = None) -> Exception:
    text = str(exc)
    if "not authorised" in text or "not in this keyring" in text:
        which = f" for one of the columns {', '.join(columns)}" if columns else ""
        return KeyringError(f"{path.name}: not authorised{which}: this keyring lacks the "
                            "master key it was encrypted with (restricted columns need the "
                            "restricted key)")
    if "does not unwrap" in text:
        return KeyringError(f"{path.name}: the keyring's master key does not match the one "
                            "this file was written with (wrong or rotated key)")
    return OutputError(f"{path.name}: cannot be decrypted: damaged, tampered, or not an "
                       "output of this tool")
