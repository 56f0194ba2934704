"""The writers' promises as an analyst and a custodian rely on them.

Written for the mutants of ``ingest/writers/policy.py`` and ``ingest/writers/parquet.py``
that the other tests let live (``scripts/mutants writers``): which columns leave, how
identifiers are pseudonymised (checked against the standard library's HMAC), what a
reader without the restricted key is told, and how the encrypted file is laid out.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import shutil
from pathlib import Path

import pandera.polars as pa
import polars as pl
import pytest

from ingest.declare import dataset
from ingest.errors import DecryptionError, KeyringError, OutputError
from ingest.keys import Keyring, SecretKey
from ingest.settings import load_settings
from ingest.writers import jsonl as jsonl_module
from ingest.writers import parquet as writers_parquet
from ingest.writers.jsonl import decrypt_jsonl, write_jsonl
from ingest.writers.parquet import key_material_name, read_parquet, write_parquet
from ingest.writers.policy import apply_policies, pseudonymise

KEY = SecretKey("pseudonym-0000000a", bytes(range(32)))
NOT_AUTHORISED = ("visits.parquet: not authorised: this keyring lacks the master key it was "
                  "encrypted with (a retired or another site's key)")


def _hmac(text: str) -> str:
    return hmac.new(KEY.material, text.encode(), hashlib.sha256).hexdigest()


# --- policies ------------------------------------------------------------------------------

class Visit(pa.DataFrameModel):
    visit: int = pa.Field(metadata={"source": "VISIT"})
    name: str = pa.Field(metadata={"source": "NAME", "policy": "drop"})
    person: int = pa.Field(metadata={"source": "PERSON", "policy": "pseudonymise"})
    ward: str = pa.Field(nullable=True, metadata={"source": "WARD"})


def test_a_dropped_column_leaves_and_every_column_after_it_stays() -> None:
    frame = pl.DataFrame({"visit": [1, 2], "name": ["Ann", "Bo"], "person": [12, 7],
                          "ward": ["A", None]})
    out = apply_policies(frame, dataset(Visit, name="visits", version="1"), KEY)
    assert out.columns == ["visit", "person", "ward"]
    assert out["person"].to_list() == [_hmac("12"), _hmac("7")]
    assert out["ward"].to_list() == ["A", None]


def test_identifiers_and_quasi_identifiers_are_the_restricted_columns() -> None:
    from ingest.writers import restricted_columns, written_columns

    class Stay(pa.DataFrameModel):
        stay: int = pa.Field(metadata={"source": "STAY"})
        person: int = pa.Field(metadata={"source": "PERSON", "policy": "pseudonymise"})
        name: str = pa.Field(metadata={"source": "NAME", "policy": "drop"})
        postcode: str = pa.Field(metadata={"source": "POSTCODE", "policy": "restrict"})
        ward: str = pa.Field(metadata={"source": "WARD", "policy": "keep"})

    stays = dataset(Stay, name="stays", version="1")
    assert restricted_columns(stays) == ["person", "postcode"]
    assert written_columns(stays) == ["stay", "person", "postcode", "ward"]


def test_an_integer_identifier_is_pseudonymised_by_its_text() -> None:
    values = pl.Series("person", [12, None, 12, 7, 300])
    out = pseudonymise(values, KEY)
    assert out.name == "person" and out.dtype == pl.String
    assert out.to_list() == [_hmac("12"), None, _hmac("12"), _hmac("7"), _hmac("300")]


def test_an_identifier_of_another_kind_is_pseudonymised_by_its_text() -> None:
    from datetime import date

    values = pl.Series("seen", [date(2020, 1, 2), None])
    assert pseudonymise(values, KEY).to_list() == [_hmac("2020-01-02"), None]


def test_text_identifiers_keep_their_rows_whatever_their_order() -> None:
    values = pl.Series("id", [f"P{i:05d}" for i in range(5000, 0, -1)] + ["P00001", None])
    out = pseudonymise(values, KEY)
    assert out.to_list() == [None if v is None else _hmac(v) for v in values.to_list()]


def test_an_identifier_column_without_a_value_stays_empty() -> None:
    out = pseudonymise(pl.Series("id", [None, None], dtype=pl.String), KEY)
    assert out.dtype == pl.String and out.to_list() == [None, None]


# --- the encrypted Parquet file ------------------------------------------------------------

@pytest.fixture
def written(own_keyring: Path, tmp_path: Path) -> tuple[Keyring, Path, pl.DataFrame]:
    keyring = Keyring.open(load_settings(home=own_keyring))
    rows = writers_parquet.ROWS_PER_GROUP + 5
    frame = pl.DataFrame({"visit": range(rows), "ward": ["A"] * rows,
                          "birth": [f"19{i % 100:02d}" for i in range(rows)]})
    sink = io.BytesIO()
    material = write_parquet(frame, keyring, ["ward", "birth"], "visits.parquet", "ab" * 32,
                             sink)
    path = tmp_path / "visits.parquet"
    path.write_bytes(sink.getvalue())
    path.with_name(key_material_name(path.name)).write_bytes(material)
    return keyring, path, frame


def _general_only(keyring: Keyring, tmp_path: Path) -> Keyring:
    reader = tmp_path / "reader"
    shutil.copytree(keyring.settings.keys_dir, reader / "keys")
    (reader / "keys" / "restricted.json").unlink()
    return Keyring.open(load_settings(home=reader))


def test_rows_go_in_row_groups_of_the_declared_size_compressed_with_zstd(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    keyring, path, frame = written
    pf = writers_parquet.open_parquet(path, keyring)
    sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
    assert sizes == [writers_parquet.ROWS_PER_GROUP, 5]
    assert {pf.metadata.row_group(0).column(i).compression for i in range(3)} == {"ZSTD"}
    assert pl.from_arrow(read_parquet(path, keyring)).equals(frame)


def test_the_file_s_keys_are_double_wrapped(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    _, path, _ = written
    material = json.loads(path.with_name(key_material_name(path.name)).read_bytes())
    footer = json.loads(material["footerKey"])
    assert footer["doubleWrapping"] is True and footer["masterKeyID"] == "general"


def test_the_reader_gets_none_of_the_files_own_metadata(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    keyring, path, _ = written
    meta = read_parquet(path, keyring).schema.metadata or {}
    assert not [k for k in meta if k.startswith(b"ingest.")]
    own = writers_parquet.open_parquet(path, keyring).schema_arrow.metadata
    assert own[b"ingest.delivery_sha256"] == b"ab" * 32
    assert json.loads(own[b"ingest.restricted_columns"]) == ["ward", "birth"]
    assert path.read_bytes()[-4:] == b"PARE"  # the footer is encrypted too


def test_a_reader_without_the_restricted_key_is_told_what_it_may_read(
        written: tuple[Keyring, Path, pl.DataFrame], tmp_path: Path) -> None:
    keyring, path, frame = written
    general = _general_only(keyring, tmp_path)
    assert pl.from_arrow(read_parquet(path, general, ["visit"])).equals(frame.select("visit"))
    with pytest.raises(KeyringError) as caught:
        read_parquet(path, general)
    assert str(caught.value) == ("not authorised for column ward, birth: this keyring holds "
                                 "only the general master key; ask for columns visit")


def _write(frame: pl.DataFrame, keyring: Keyring, restricted: list[str], path: Path) -> Path:
    sink = io.BytesIO()
    material = write_parquet(frame, keyring, restricted, path.name, "ab" * 32, sink)
    path.write_bytes(sink.getvalue())
    _material(path).write_bytes(material)
    return path


def test_every_readable_column_is_named(own_keyring: Path, tmp_path: Path) -> None:
    keyring = Keyring.open(load_settings(home=own_keyring))
    frame = pl.DataFrame({"visit": [1], "Surname first": ["Ann"], "day": [3]})
    path = _write(frame, keyring, ["Surname first"], tmp_path / "visits.parquet")
    general = _general_only(keyring, tmp_path)
    with pytest.raises(KeyringError) as caught:
        read_parquet(path, general)
    assert str(caught.value) == ("not authorised for column Surname first: this keyring "
                                 "holds only the general master key; ask for columns visit, day")
    assert pl.from_arrow(read_parquet(path, general, ["visit", "day"])).equals(
        frame.select("visit", "day"))


@pytest.mark.parametrize("name", ["Surname, first", "dose:mg", "a;b", " ward", "ward "],
                         ids=["comma", "colon", "semicolon", "leading-space", "trailing-space"])
def test_a_name_parquet_encryption_cannot_list_is_refused_before_a_byte_is_written(
        own_keyring: Path, tmp_path: Path, name: str) -> None:
    # pyarrow would encrypt a column of another name ("Surname"), or refuse the list
    keyring = Keyring.open(load_settings(home=own_keyring))
    for restricted in ([name], []):
        sink = io.BytesIO()
        with pytest.raises(OutputError) as caught:
            write_parquet(pl.DataFrame({"visit": [1], name: ["x"]}), keyring, restricted,
                          "visits.parquet", "ab" * 32, sink)
        assert str(caught.value) == (
            f"visits.parquet: column {name!r} cannot be encrypted in Parquet: Parquet Modular "
            "Encryption lists a key's columns by name, split at ',', ';' and ':' and trimmed "
            "of spaces")
        assert sink.getvalue() == b""


def test_every_name_parquet_encryption_cannot_list_is_named(
        own_keyring: Path) -> None:
    keyring = Keyring.open(load_settings(home=own_keyring))
    frame = pl.DataFrame({"a,b": [1], "visit": [2], "c:d": [3]})
    with pytest.raises(OutputError) as caught:
        write_parquet(frame, keyring, [], "visits.parquet", "ab" * 32, io.BytesIO())
    assert str(caught.value).startswith("visits.parquet: column 'a,b', 'c:d' cannot be ")


def test_no_key_material_stays_in_the_process_s_memory_file_system(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    # fsspec's in-memory file system is one store for the whole process
    from fsspec.implementations.memory import MemoryFileSystem

    keyring, _, frame = written
    write_parquet(frame.head(3), keyring, ["ward"], "again.parquet", "ab" * 32, io.BytesIO())
    left = [p for p in [*MemoryFileSystem.store, *MemoryFileSystem.pseudo_dirs]
            if "ingest-" in p or "KEY_MATERIAL" in p]
    assert left == []


def test_a_name_with_any_other_punctuation_is_written_and_read_as_it_is(
        own_keyring: Path, tmp_path: Path) -> None:
    keyring = Keyring.open(load_settings(home=own_keyring))
    names = ["X-ray (Y/N)", "No. of visits", "Größe=cm", "a\tb", "$AMOUNT", "'q'"]
    assert writers_parquet.unlistable(names) == []
    frame = pl.DataFrame({name: [i] for i, name in enumerate(names)})
    path = _write(frame, keyring, names[:2], tmp_path / "visits.parquet")
    assert pl.from_arrow(read_parquet(path, keyring)).equals(frame)


def test_a_schema_naming_such_a_column_is_refused_before_the_delivery_is_read(
        tmp_path: Path) -> None:
    from ingest.errors import UsageError
    from ingest.pipeline import datasets_of

    class Doses(pa.DataFrameModel):
        visit: int = pa.Field(metadata={"source": "VISIT"})
        note: str = pa.Field(alias="note, free", metadata={"source": "NOTE", "policy": "drop"})
        dose: int = pa.Field(alias="dose:mg", metadata={"source": "DOSE"})

    with pytest.raises(UsageError) as caught:
        datasets_of(dataset(Doses, name="doses", version="1"))
    # a dropped column is never written, so its name may hold anything
    assert str(caught.value) == (
        "schema doses: column 'dose:mg' cannot be encrypted in Parquet: Parquet Modular "
        "Encryption lists a key's columns by name, split at ',', ';' and ':' and trimmed of "
        "spaces; name the field without them (the delivery's header stays in metadata "
        "'source')")


def test_a_table_of_restricted_columns_only_is_written_and_guarded(
        own_keyring: Path, tmp_path: Path) -> None:
    keyring = Keyring.open(load_settings(home=own_keyring))
    frame = pl.DataFrame({"name": ["Ann", "Bo"], "born": ["1970", "1981"]})
    path = _write(frame, keyring, ["name", "born"], tmp_path / "people.parquet")
    assert pl.from_arrow(read_parquet(path, keyring)).equals(frame)
    with pytest.raises(KeyringError) as caught:
        read_parquet(path, _general_only(keyring, tmp_path), ["born"])
    assert str(caught.value) == ("not authorised for column born: this keyring holds only the "
                                 "general master key; every column is restricted")


def test_a_table_without_restricted_columns_needs_no_restricted_key(
        own_keyring: Path, tmp_path: Path) -> None:
    keyring = Keyring.open(load_settings(home=own_keyring))
    general = _general_only(keyring, tmp_path)
    frame = pl.DataFrame({"visit": [1, 2]})
    path = _write(frame, general, [], tmp_path / "visits.parquet")
    assert pl.from_arrow(read_parquet(path, general)).equals(frame)


def test_a_file_listing_its_restricted_columns_by_commas_is_still_guarded(
        own_keyring: Path, tmp_path: Path) -> None:
    # files written before the list was JSON: the names joined by commas
    import pyarrow.parquet.encryption as pe

    keyring = Keyring.open(load_settings(home=own_keyring))
    path = tmp_path / "visits.parquet"
    config = pe.EncryptionConfiguration(
        footer_key="general", column_keys={"general": ["visit"], "restricted": ["ward", "bed"]},
        double_wrapping=True, internal_key_material=False)
    props = pe.CryptoFactory(keyring.kms_factory()).file_encryption_properties(
        pe.KmsConnectionConfig(), config, str(path))
    table = pl.DataFrame({"visit": [1], "ward": ["A"], "bed": [2]}).to_arrow()
    import pyarrow.parquet as pq

    pq.write_table(table.replace_schema_metadata({b"ingest.restricted_columns": b"ward,bed"}),
                   path, encryption_properties=props)
    with pytest.raises(KeyringError) as caught:
        read_parquet(path, _general_only(keyring, tmp_path))
    assert str(caught.value).startswith("not authorised for column ward, bed: ")


def test_a_column_the_file_lacks_is_named(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    keyring, path, _ = written
    with pytest.raises(OutputError) as caught:
        read_parquet(path, keyring, ["visit", "height", "weight"])
    assert str(caught.value) == "visits.parquet: no column height, weight"


def test_a_file_of_another_delivery_is_refused(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    keyring, path, _ = written
    assert read_parquet(path, keyring, ["visit"], delivery_sha256="ab" * 32).num_rows > 0
    with pytest.raises(OutputError) as caught:
        read_parquet(path, keyring, ["visit"], delivery_sha256="cd" * 32)
    assert str(caught.value) == (f"{path}: this file belongs to another delivery than its "
                                 "folder's manifest says; outputs were moved or swapped")


def test_a_column_key_wrapped_under_another_restricted_key_is_told_as_such(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    # the footer opens (general key), the restricted columns' keys do not: the keyring
    # holds a restricted key, but not the one they were wrapped with
    keyring, path, _ = written
    Keyring._write_key(keyring.settings.keys_dir / "restricted.json",
                       SecretKey("restricted-0000000f", bytes(32)))
    other = Keyring.open(keyring.settings)
    assert read_parquet(path, other, ["visit"]).num_rows > 0
    for read in (lambda: read_parquet(path, other),
                 lambda: list(writers_parquet.iter_parquet(path, other, None, None))):
        with pytest.raises(KeyringError) as caught:
            read()
        assert str(caught.value) == NOT_AUTHORISED


def test_damaged_key_material_is_named(written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    keyring, path, _ = written
    _material(path).write_text("{ not the key material")
    with pytest.raises(OutputError) as caught:
        read_parquet(path, keyring)
    assert str(caught.value) == ("visits.parquet: its key material file "
                                 "_KEY_MATERIAL_FOR_visits.parquet.json is missing or damaged")


def test_a_file_that_is_not_parquet_is_told_as_such(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    keyring, path, _ = written
    path.write_bytes(b"a,b\n1,2\n" * 100)
    with pytest.raises(OutputError) as caught:
        read_parquet(path, keyring)
    assert str(caught.value) == ("visits.parquet: cannot be decrypted: damaged, tampered, "
                                 "or not an output of this tool")


def test_a_rotation_without_a_role_s_current_key_is_told_so(
        written: tuple[Keyring, Path, pl.DataFrame], tmp_path: Path) -> None:
    # wrapping anew needs the current restricted key, which this keyring lacks
    keyring, path, _ = written
    with pytest.raises(KeyringError) as caught:
        writers_parquet.rotate_parquet(path, _general_only(keyring, tmp_path))
    assert str(caught.value) == NOT_AUTHORISED


def test_a_file_without_the_project_s_metadata_is_refused_or_read_plainly(
        own_keyring: Path, tmp_path: Path) -> None:
    # encrypted under the same keys by plain pyarrow, without the delivery's hash or the
    # list of restricted columns: not this delivery's, and nothing to deny
    import pyarrow as pa_
    import pyarrow.parquet as pq
    import pyarrow.parquet.encryption as pe

    keyring = Keyring.open(load_settings(home=own_keyring))
    path = tmp_path / "foreign.parquet"
    config = pe.EncryptionConfiguration(footer_key="general", column_keys={"general": ["v"]},
                                        plaintext_footer=False, double_wrapping=True,
                                        internal_key_material=False)
    props = pe.CryptoFactory(keyring.kms_factory()).file_encryption_properties(
        pe.KmsConnectionConfig(), config, str(path))
    pq.write_table(pa_.table({"v": [1, 2]}), path, encryption_properties=props)
    with pytest.raises(OutputError, match="belongs to another delivery"):
        read_parquet(path, keyring, delivery_sha256="ab" * 32)
    assert read_parquet(path, _general_only(keyring, tmp_path))["v"].to_pylist() == [1, 2]


# --- what goes wrong, told as what it is --------------------------------------------------

def _material(path: Path) -> Path:
    return path.with_name(key_material_name(path.name))


def test_a_missing_key_material_file_is_named(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    keyring, path, _ = written
    _material(path).unlink()
    for read in (lambda: read_parquet(path, keyring),
                 lambda: list(writers_parquet.iter_parquet(path, keyring, None, None)),
                 lambda: writers_parquet.rotate_parquet(path, keyring)):
        with pytest.raises(OutputError) as caught:
            read()
        assert str(caught.value) == ("visits.parquet: its key material file "
                                     "_KEY_MATERIAL_FOR_visits.parquet.json is missing or "
                                     "damaged")


def test_key_material_pyarrow_cannot_parse_is_named(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    keyring, path, _ = written
    material = json.loads(_material(path).read_bytes())
    footer = json.loads(material["footerKey"])
    shapes = {"a footer key that is not JSON": {**material, "footerKey": "{ not JSON"},
              "a footer key without its wrapped key": {
                  **material, "footerKey": json.dumps(
                      {k: v for k, v in footer.items() if k != "wrappedDEK"})},
              "a list": []}
    for shape, content in shapes.items():
        _material(path).write_text(json.dumps(content))
        for read in (lambda: read_parquet(path, keyring),
                     lambda: writers_parquet.rotate_parquet(path, keyring)):
            with pytest.raises(OutputError) as caught:
                read()
            assert str(caught.value) == (
                "visits.parquet: its key material file _KEY_MATERIAL_FOR_visits.parquet.json "
                "is missing or damaged"), shape


def test_key_material_without_the_file_s_keys_is_named(
        written: tuple[Keyring, Path, pl.DataFrame], tmp_path: Path) -> None:
    keyring, path, frame = written
    told = ("visits.parquet: its key material file _KEY_MATERIAL_FOR_visits.parquet.json does "
            "not hold this file's keys (damaged, or another file's)")
    material = json.loads(_material(path).read_bytes())
    _material(path).write_text(json.dumps({"footerKey": material["footerKey"]}))
    with pytest.raises(OutputError) as caught:  # the footer opens, the columns do not
        read_parquet(path, keyring)
    assert str(caught.value) == told
    _material(path).write_text("{}")
    with pytest.raises(OutputError) as caught:
        read_parquet(path, keyring)
    assert str(caught.value) == told


def test_altered_key_material_is_named(written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    keyring, path, _ = written
    material = json.loads(_material(path).read_bytes())
    footer = json.loads(material["footerKey"])
    key_id, _, blob = footer["wrappedKEK"].partition("$")  # what our KMS wrapped
    flipped = blob[:10] + ("A" if blob[10] != "A" else "B") + blob[11:]
    footer["wrappedKEK"] = f"{key_id}${flipped}"
    material["footerKey"] = json.dumps(footer)
    _material(path).write_text(json.dumps(material))
    with pytest.raises(OutputError) as caught:
        read_parquet(path, keyring)
    assert str(caught.value) == ("visits.parquet: its key material was altered; restore the "
                                 "output from backup or re-run the delivery with --force")


def test_a_keyring_without_the_file_s_general_key_is_told_so(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    keyring, path, _ = written
    Keyring._write_key(keyring.settings.keys_dir / "general.json",
                       SecretKey("general-0000000f", bytes(32)))
    with pytest.raises(KeyringError) as caught:
        read_parquet(path, Keyring.open(keyring.settings))
    assert str(caught.value) == NOT_AUTHORISED


def test_a_damaged_page_is_told_as_damage_whichever_way_it_is_read(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    keyring, path, _ = written
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the data pages, far from the footer
    path.write_bytes(bytes(data))
    for read in (lambda: read_parquet(path, keyring),
                 lambda: list(writers_parquet.iter_parquet(path, keyring, None, None))):
        with pytest.raises(OutputError) as caught:
            read()
        assert str(caught.value) == ("visits.parquet: cannot be decrypted: damaged, "
                                     "tampered, or not an output of this tool")


def test_batches_are_read_for_the_delivery_and_columns_asked_for(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    keyring, path, frame = written
    batches = list(writers_parquet.iter_parquet(path, keyring, ["visit"], "ab" * 32,
                                                batch_size=50_000))
    assert [b.num_rows for b in batches][:2] == [50_000, 50_000]
    assert {tuple(b.schema.names) for b in batches} == {("visit",)}
    assert sum(b.num_rows for b in batches) == frame.height
    with pytest.raises(OutputError, match="belongs to another delivery"):
        list(writers_parquet.iter_parquet(path, keyring, ["visit"], "cd" * 32))
    with pytest.raises(OutputError) as caught:
        list(writers_parquet.iter_parquet(path, keyring, ["height"], None))
    assert str(caught.value) == "visits.parquet: no column height"


def test_rotation_rewraps_double_and_keeps_the_material_private(
        written: tuple[Keyring, Path, pl.DataFrame]) -> None:
    import stat

    keyring, path, frame = written
    keyring.begin_rotation("general")
    rotated = Keyring.open(keyring.settings)
    writers_parquet.rotate_parquet(path, rotated)
    footer = json.loads(json.loads(_material(path).read_bytes())["footerKey"])
    assert footer["doubleWrapping"] is True
    assert footer["wrappedKEK"].startswith(rotated.master_key("general").id + "$")
    assert stat.S_IMODE(_material(path).stat().st_mode) == 0o600
    assert pl.from_arrow(read_parquet(path, rotated)).equals(frame)


# --- encrypted JSON Lines ------------------------------------------------------------------

def _identity():  # noqa: ANN202 - a pyrage identity
    import pyrage

    return pyrage.x25519.Identity.generate()


def _jsonl(frame: pl.DataFrame, identity) -> bytes:  # noqa: ANN001
    sink = io.BytesIO()
    write_jsonl(frame, identity.to_public(), sink)
    return sink.getvalue()


def test_json_lines_spell_datetimes_in_iso_8601() -> None:
    from datetime import UTC, datetime

    import pyrage

    identity = _identity()
    frame = pl.DataFrame({"seen": [datetime(2020, 1, 2, 3, 4, 5)],
                          "at": [datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)], "n": [1]})
    text = pyrage.decrypt(_jsonl(frame, identity), [identity]).decode()
    record = json.loads(text)
    assert record["seen"].startswith("2020-01-02T03:04:05")  # naive: no offset
    assert "+" not in record["seen"] and record["n"] == 1
    assert record["at"].startswith("2020-01-02T03:04:05") and record["at"].endswith("+00:00")


def test_json_lines_hold_every_row_once_across_chunks_and_none_when_empty() -> None:
    identity = _identity()
    rows = jsonl_module.ROWS_PER_CHUNK * 2 + 7
    # a column empty for its first hundreds of rows is still read with its type
    frame = pl.DataFrame({"i": range(rows),
                          "late": [None] * 500 + list(range(rows - 500))})
    assert decrypt_jsonl(_jsonl(frame, identity), identity).equals(frame)
    empty = decrypt_jsonl(_jsonl(frame.head(0), identity), identity)
    assert empty.height == 0


def test_json_lines_for_another_identity_are_refused_by_name() -> None:
    data = _jsonl(pl.DataFrame({"i": [1]}), _identity())
    with pytest.raises(DecryptionError) as caught:
        decrypt_jsonl(data, _identity())
    assert str(caught.value) == ("file: cannot be decrypted: wrong identity, tampered or "
                                 "truncated")
    with pytest.raises(DecryptionError) as caught:
        decrypt_jsonl(data, _identity(), "cases.jsonl.age")
    assert str(caught.value).startswith("cases.jsonl.age: cannot be decrypted")


def test_a_source_that_fails_is_not_taken_for_a_written_output() -> None:
    import pyrage

    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # noqa: ANN001
            raise OSError(5, "Input/output error")

    sink = io.BytesIO()
    with pytest.raises(pyrage.EncryptError, match="Input/output error"):
        jsonl_module.encrypt_into(Failing(), _identity().to_public(), sink)


def test_a_sink_that_fails_raises_its_own_error() -> None:
    import errno

    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:  # noqa: ANN001
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as caught:
        write_jsonl(pl.DataFrame({"i": range(10)}), _identity().to_public(), Full())
    assert caught.value.errno == errno.ENOSPC
