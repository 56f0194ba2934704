"""Sparse feature matrices: encoding, reuse across deliveries, encrypted outputs, fitting."""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pyrage
import pytest
import scipy.sparse as sp

import ingest.features as features
from ingest.errors import DecryptionError, OutputError, UsageError
from ingest.features import UNSEEN, Encoding
from ingest.keys.keyring import SecretKey
from ingest.readers.csv import read_delimited
from ingest.schema import Features, load_dataset
from ingest.synth import generate, to_delimited
from ingest.validate import validate
from ingest.writers import apply_policies

DATASET = load_dataset("reference")
DELIVERY = date(2026, 6, 30)
AGE_HEADER = b"age-encryption.org/v1\n"


def cleaned(rows: int, seed: int) -> pl.DataFrame:
    """A table like the published one: read, validated, policies applied."""
    frame, _ = generate(rows, seed=seed, delivery_date=DELIVERY)
    source = read_delimited(to_delimited(frame), DATASET, "x.csv")
    accepted = validate(source, DATASET, DELIVERY).accepted
    return apply_policies(accepted, DATASET, SecretKey("test", bytes(range(32))))


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    return cleaned(20_000, seed=21)


@pytest.fixture(scope="module")
def fm(table: pl.DataFrame) -> features.FeatureMatrix:
    return features.build(table, DATASET)


@pytest.fixture(scope="module")
def identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


def small_table() -> pl.DataFrame:
    return pl.DataFrame({
        "person_id": ["t1", "t2", "t3", "t4"],
        "birth_date": [date(2000, 1, 1)] * 4,
        "sex": pl.Series(["M", "F", None, "M"], dtype=pl.Categorical),
        "county_fips": ["01001", "02002", "01001", "01001"],
        "report_date": [date(2010, 1, 1), date(2020, 1, 1), date(2000, 1, 1),
                        date(2030, 1, 1)],
        "diagnosis_code": pl.Series(["A01", "B02", "A01", "A01"], dtype=pl.Categorical),
        "lab_value": [1.5, None, 0.0, 2.0],
        "hospitalized": [True, False, False, False],
    })


# -- structure -----------------------------------------------------------------------

def test_shapes_and_types(table: pl.DataFrame, fm: features.FeatureMatrix) -> None:
    n = table.height
    assert isinstance(fm.X, sp.csr_matrix)
    assert fm.X.dtype == np.float32
    assert fm.X.shape == (n, len(fm.feature_names)) == fm.shape
    assert fm.X.has_sorted_indices
    assert len(set(fm.feature_names)) == len(fm.feature_names)
    assert isinstance(fm.y, np.ndarray) and fm.y.shape == (n,)
    vocab = {c.name: c.vocabulary for c in fm.encoding.categorical}
    width = sum(len(v) + 1 for v in vocab.values()) + 4  # + unseen; lab, age + indicators
    assert fm.X.shape[1] == width
    assert len(vocab["county_fips"]) == table["county_fips"].n_unique()
    # one entry per categorical column in every row (no nulls here)
    cat_cols = sum(len(v) + 1 for v in vocab.values())
    assert (np.diff(fm.X[:, :cat_cols].tocsr().indptr) == 3).all()
    # no explicit zeros stored
    assert (fm.X.data != 0).all()
    # vocabularies hold codes, never the pseudonymised person_id nor free text
    assert {c.name for c in fm.encoding.categorical} == {"sex", "diagnosis_code",
                                                          "county_fips"}
    assert not any(name.startswith(("person_id", "case_id", "comments", "birth_date"))
                   for name in fm.feature_names)
    text = json.dumps(fm.encoding.to_json())
    assert not any(token in text for token in table["person_id"].head(200).to_list())


def test_one_hot_on_a_small_table() -> None:
    fm = features.build(small_table(), DATASET)
    assert fm.feature_names == [
        "sex=F", "sex=M", f"sex={UNSEEN}", "sex=null",
        "diagnosis_code=A01", "diagnosis_code=B02", f"diagnosis_code={UNSEEN}",
        "county_fips=01001", "county_fips=02002", f"county_fips={UNSEEN}",
        "lab_value", "lab_value:missing", "age_at_report", "age_at_report:missing",
    ]
    dense = fm.X.toarray()
    age = np.round(np.array([3653, 7305, 0, 10958]) / 365.25, 5)
    expected = np.array([
        # F  M  ?  null A01 B02 ?  01001 02002 ?  lab  miss age miss
        [0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1.5, 0, age[0], 0],
        [1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0.0, 1, age[1], 0],
        [0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0.0, 0, 0.0, 0],
        [0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 2.0, 0, age[3], 0],
    ], dtype=np.float32)
    np.testing.assert_allclose(dense, expected, rtol=1e-5)
    assert isinstance(fm.y, np.ndarray) and fm.y.tolist() == [1, 0, 0, 0]
    # the null of a non-nullable column earned an indicator because the fit saw it
    assert fm.encoding.categorical[0].null_indicator
    assert not fm.encoding.categorical[1].null_indicator


def test_null_indicators(table: pl.DataFrame, fm: features.FeatureMatrix) -> None:
    names = fm.feature_names
    null = table["lab_value"].is_null().to_numpy()
    assert 0 < null.sum() < table.height * 0.1
    value = fm.X[:, names.index("lab_value")].toarray().ravel()
    flag = fm.X[:, names.index("lab_value:missing")].toarray().ravel()
    assert (flag == null).all()
    assert (value[null] == 0).all()
    np.testing.assert_allclose(value[~null], table["lab_value"].to_numpy()[~null], rtol=1e-6)
    # lab_value is nullable in the schema: an indicator; sex is not: none
    assert "sex=null" not in names
    assert "age_at_report:missing" in names


def test_label_and_class_weights(table: pl.DataFrame, fm: features.FeatureMatrix) -> None:
    from sklearn.utils.class_weight import compute_class_weight

    y = table["hospitalized"].to_numpy().astype(np.int8)
    assert isinstance(fm.y, np.ndarray) and fm.y.dtype == np.int8
    assert (fm.y == y).all()
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=y)
    assert set(fm.class_weight) == {0, 1}
    assert fm.class_weight[0] == pytest.approx(expected[0])
    assert fm.class_weight[1] == pytest.approx(expected[1])
    n, positives = len(y), int(y.sum())
    assert fm.class_weight[1] == pytest.approx(n / (2 * positives))
    assert fm.class_weight[1] > 10  # about 3 % hospitalised


def test_derived_age(table: pl.DataFrame, fm: features.FeatureMatrix) -> None:
    age = fm.X[:, fm.feature_names.index("age_at_report")].toarray().ravel()
    days = (table["report_date"] - table["birth_date"]).dt.total_days().to_numpy()
    np.testing.assert_allclose(age, days / 365.25, rtol=1e-5)
    assert 0 <= age.min() and age.max() <= 2026 - 1900  # boundary DOB 1900-01-01


def test_scaling_is_declared_and_reused(table: pl.DataFrame) -> None:
    fm = features.build(table, DATASET, scale=["lab_value", "age_at_report"])
    names = fm.feature_names
    age = fm.X[:, names.index("age_at_report")].toarray().ravel()
    assert abs(age.mean()) < 1e-3 and age.std() == pytest.approx(1, rel=1e-3)
    spec = {n.name: n for n in fm.encoding.numeric}
    assert spec["age_at_report"].scaled and spec["lab_value"].scaled
    other = cleaned(2_000, seed=5)
    again = features.build(other, DATASET, encoding=fm.encoding)
    days = (other["report_date"] - other["birth_date"]).dt.total_days().to_numpy() / 365.25
    expected = (days - spec["age_at_report"].mean) / spec["age_at_report"].scale
    got = again.X[:, names.index("age_at_report")].toarray().ravel()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(UsageError, match="comments"):
        features.build(table, DATASET, scale=["comments"])


def test_default_is_unscaled(fm: features.FeatureMatrix) -> None:
    assert not any(n.scaled for n in fm.encoding.numeric)


# -- reuse across deliveries ---------------------------------------------------------

def test_reuse_with_unseen_category(fm: features.FeatureMatrix) -> None:
    second = cleaned(3_000, seed=99)
    sex = second["sex"].cast(pl.String).scatter(0, "Q").cast(pl.Categorical)
    second = second.with_columns(sex)
    again = features.build(second, DATASET, encoding=fm.encoding)
    assert again.X.shape == (second.height, fm.X.shape[1])
    assert again.feature_names == fm.feature_names
    assert again.encoding == fm.encoding
    names = fm.feature_names
    unseen_sex = again.X[:, names.index(f"sex={UNSEEN}")].toarray().ravel()
    assert unseen_sex.tolist() == [1] + [0] * (second.height - 1)
    # the seeds draw other county/diagnosis pools: many unseen, all in their bucket
    fips_seen = set(fm.encoding.categorical[2].vocabulary)
    unseen_fips = ~second["county_fips"].is_in(list(fips_seen)).to_numpy()
    assert unseen_fips.any()
    bucket = again.X[:, names.index(f"county_fips={UNSEEN}")].toarray().ravel()
    assert (bucket == unseen_fips).all()
    # every row still has one entry per categorical column
    cats = fm.encoding.offsets()[3]
    assert (np.diff(again.X[:, :cats].tocsr().indptr) == 3).all()
    # a known category keeps its column
    row = next(i for i, v in enumerate(second["diagnosis_code"].cast(pl.String).to_list())
               if f"diagnosis_code={v}" in names)
    code = second["diagnosis_code"].cast(pl.String)[row]
    assert again.X[row, names.index(f"diagnosis_code={code}")] == 1
    # the fitted table itself never uses the unseen bucket
    assert fm.X[:, names.index(f"county_fips={UNSEEN}")].nnz == 0


def test_encoding_json_round_trip(fm: features.FeatureMatrix) -> None:
    doc = json.loads(json.dumps(fm.encoding.to_json()))
    assert doc["dataset"] == "reference" and doc["version"] == DATASET.version
    again = Encoding.from_json(doc)
    assert again == fm.encoding
    doc["feature_names"] = doc["feature_names"][:-1]
    with pytest.raises(UsageError, match="damaged"):
        Encoding.from_json(doc)


def test_encoding_of_another_schema_is_refused(fm: features.FeatureMatrix,
                                              table: pl.DataFrame) -> None:
    other = replace(DATASET, features=replace(DATASET.features, categorical=("sex",)))
    with pytest.raises(UsageError, match="fit a new one"):
        features.build(table, other, encoding=fm.encoding)


def test_identifiers_are_never_features(table: pl.DataFrame) -> None:
    for column in ("person_id", "comments", "birth_date"):
        bad = replace(DATASET, features=Features(labels=("hospitalized",),
                                                 categorical=(column,)))
        with pytest.raises(UsageError) as err:
            features.build(table, bad)
        assert column in str(err.value)
        assert not any(v in str(err.value) for v in table["person_id"].head(50).to_list())


def test_missing_feature_column(table: pl.DataFrame) -> None:
    with pytest.raises(UsageError, match="diagnosis_code"):
        features.build(table.drop("diagnosis_code"), DATASET)


def test_several_binary_labels(table: pl.DataFrame,
                               identity: pyrage.x25519.Identity, tmp_path: Path) -> None:
    data = table.with_columns(female=pl.col("sex").cast(pl.String) == "F")
    two = replace(DATASET, features=replace(DATASET.features,
                                            labels=("hospitalized", "female")))
    fm = features.build(data, two)
    assert sp.issparse(fm.y) and fm.y.shape == (data.height, 2)
    dense = fm.y.toarray()
    assert (dense[:, 0] == data["hospitalized"].to_numpy()).all()
    assert (dense[:, 1] == data["female"].to_numpy()).all()
    assert set(fm.class_weight) == {"hospitalized", "female"}
    assert set(fm.class_weight["female"]) == {0, 1}
    for name, blob in features.save(fm, identity.to_public()).items():
        (tmp_path / name).write_bytes(blob)
    back = features.load(tmp_path, identity)
    assert (back.y != fm.y).nnz == 0
    assert back.class_weight == fm.class_weight


# -- encrypted outputs ---------------------------------------------------------------

def test_a_matrix_that_fails_to_serialise_is_never_written(
        fm: features.FeatureMatrix, identity: pyrage.x25519.Identity,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The npz streams into the encryption: if it breaks off, the ciphertext of the
    part made so far is an error, never an output."""
    import ingest.features.store as store

    def broken(out, members) -> None:
        out.write(b"PK" + bytes(4 << 20))  # more than the pipe holds, then a failure
        raise MemoryError

    monkeypatch.setattr(store, "_savez", broken)
    with pytest.raises(OutputError, match="could not be serialised"):
        features.save(fm, identity.to_public())


def test_an_encryption_that_fails_stops_the_serialiser(
        fm: features.FeatureMatrix, identity: pyrage.x25519.Identity) -> None:
    """The disk fills part way through the npz: the serialiser, blocked on the full
    pipe with most of the matrix still to give, is stopped; the caller gets the
    disk's error promptly, and no thread is left behind."""
    import contextlib
    import errno
    import os
    import threading

    import ingest.features.store as store

    room = 256 << 10
    taken = {"bytes": 0}

    class FullDisk(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
            if taken["bytes"] + len(data) > room:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            taken["bytes"] += len(data)
            return len(data)

    # the matrix stacked until its npz is far larger than the pipe between them
    big = replace(fm, X=sp.vstack([fm.X] * 8, format="csr"), y=np.tile(fm.y, 8))
    plain = io.BytesIO()
    np.savez(plain, **store._arrays(big))
    assert plain.tell() > 4 * (1 << 20) + room  # far more than the pipe and the sink hold
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            features.write(big, identity.to_public(),
                           lambda name: contextlib.nullcontext(FullDisk()))
        except BaseException as exc:  # noqa: BLE001 - examined below
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the serialiser was not stopped: the write hangs"
    error = outcome.get("error")
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC, repr(error)
    assert 0 < taken["bytes"] <= room
    assert not [t for t in threading.enumerate() if t.name == "features-npz"]


def test_save_load_round_trip(fm: features.FeatureMatrix, identity: pyrage.x25519.Identity,
                              tmp_path: Path) -> None:
    files = features.save(fm, identity.to_public())
    assert set(files) == {"features.npz.age", "features.json.age"}
    for blob in files.values():
        assert blob.startswith(AGE_HEADER)
        # no feature name, hence no category spelling, is readable in the ciphertext
        for needle in ("diagnosis_code", "county_fips", "hospitalized", "__unseen__",
                       *[n for n in fm.feature_names if len(n) >= 12][:500]):
            assert needle.encode() not in blob
    for name, blob in files.items():
        (tmp_path / name).write_bytes(blob)

    back = features.load(tmp_path, identity)
    assert back.X.dtype == np.float32 and back.X.shape == fm.X.shape
    assert (back.X != fm.X).nnz == 0
    assert isinstance(back.y, np.ndarray) and (back.y == fm.y).all()
    assert back.feature_names == fm.feature_names
    assert back.class_weight == fm.class_weight
    assert all(isinstance(k, int) for k in back.class_weight)
    assert back.encoding == fm.encoding
    # the file path works too, and the inner npz is plain scipy
    assert features.load(tmp_path / "features.npz.age", identity).shape == fm.shape
    plain = pyrage.decrypt(files["features.npz.age"], [identity])
    assert (sp.load_npz(io.BytesIO(plain)) != fm.X).nnz == 0

    with pytest.raises(DecryptionError):
        features.load(tmp_path, pyrage.x25519.Identity.generate())


def test_load_uses_the_keyring(fm: features.FeatureMatrix, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.keys import Keyring
    from ingest.settings import load_settings

    home = tmp_path / "home"
    monkeypatch.setenv("INGEST_HOME", str(home))
    ring = Keyring.init(load_settings())
    out = tmp_path / "delivery"
    out.mkdir()
    for name, blob in features.save(fm, ring.age_recipient()).items():
        (out / name).write_bytes(blob)
    back = features.load(out)
    assert (back.X != fm.X).nnz == 0


# -- using the matrix ----------------------------------------------------------------

def test_logistic_regression_on_the_csr(table: pl.DataFrame) -> None:
    from sklearn.linear_model import LogisticRegression

    fm = features.build(table, DATASET, scale=["lab_value", "age_at_report"])
    model = LogisticRegression(class_weight=fm.class_weight, max_iter=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence on random synthetic labels
        model.fit(fm.X, fm.y)
    assert model.coef_.shape == (1, len(fm.feature_names))
    predicted = model.predict(fm.X)
    # balanced weights make the 3 % class matter: unweighted it is never predicted
    assert predicted.mean() > 0.05


def test_pytorch_sparse_tensor(fm: features.FeatureMatrix) -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    coo = fm.X.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    X = torch.sparse_coo_tensor(indices, torch.from_numpy(coo.data),
                                size=coo.shape).coalesce()
    assert X.dtype == torch.float32 and tuple(X.shape) == fm.shape
    weights = torch.ones((fm.shape[1], 1))
    row_sums = torch.sparse.mm(X, weights).squeeze(1).numpy()
    np.testing.assert_allclose(row_sums, np.asarray(fm.X.sum(axis=1)).ravel(), rtol=1e-5)
    assert isinstance(fm.y, np.ndarray)
    y = torch.from_numpy(fm.y.astype(np.float32))
    assert y.shape[0] == fm.shape[0]
