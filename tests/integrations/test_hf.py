"""The Hugging Face ``datasets`` integration, through the real library on local parquet
files: the planted rows are found exactly, unverified rows stay out of the clean side,
``num_proc > 1`` and streaming agree with one process, and the cache fingerprint is
stable for the same lists and changes with their content."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest

datasets = pytest.importorskip("datasets")

from datahygiene.errors import ListError  # noqa: E402
from datahygiene.integrations.hf import DECISION, REASONS, Annotator, annotate, split  # noqa: E402


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private datasets cache, so no test reuses another's (or the user's) entries."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


def _files(truth: dict[str, Any]) -> list[str]:
    return [str(truth["manifest"] / f) for f in truth["files"]]


def _lists(truth: dict[str, Any]) -> list[str]:
    return [f"md5={truth['dir'] / 'lists' / 'md5.txt'}", f"url-sha256={truth['dir'] / 'lists' / 'urls.csv'}"]


def _load(truth: dict[str, Any], cache: Path, streaming: bool = False) -> Any:
    return datasets.load_dataset("parquet", data_files=_files(truth), split="train",
                                 streaming=streaming, cache_dir=str(cache))


def _decisions(ds: Any) -> dict[str, str]:
    t = ds.with_format("arrow")[:] if not isinstance(ds, datasets.IterableDataset) else None
    if t is None:
        rows = list(ds.with_format(None))
        return {r["key"]: r[DECISION] for r in rows}
    return dict(zip(t.column("key").to_pylist(), t.column(DECISION).to_pylist(), strict=True))


def _check_truth(decisions: dict[str, str], truth: dict[str, Any]) -> None:
    assert len(decisions) == truth["rows"]
    assert {k for k, d in decisions.items() if d == "excluded"} == set(truth["planted_keys"])
    assert {k for k, d in decisions.items() if d == "unverified"} == set(truth["malformed_keys"])


def test_annotate_finds_exactly_the_planted_rows(synth: dict[str, Any], hf_cache: Path) -> None:
    ds = _load(synth, hf_cache)
    annotated = annotate(ds, _lists(synth))
    assert set(annotated.column_names) == {*ds.column_names, DECISION, REASONS}
    _check_truth(_decisions(annotated), synth)
    rows = annotated.with_format(None)
    reasons = {r["key"]: r[REASONS] for r in rows if r[DECISION] != "clean"}
    # each planted row matched both its md5 and its URL; a null md5 says so
    assert all({"md5:match", "url-sha256:match"} <= set(reasons[k]) for k in synth["planted_keys"])
    assert all("md5:null" in reasons[k] for k in synth["malformed_keys"])
    assert all(r[REASONS] == [] for r in rows if r[DECISION] == "clean")


def test_split_keeps_unverified_out_of_clean(synth: dict[str, Any], hf_cache: Path) -> None:
    annotated = annotate(_load(synth, hf_cache), _lists(synth))
    clean, excluded = split(annotated)
    bad = set(synth["planted_keys"]) | set(synth["malformed_keys"])
    assert len(clean) + len(excluded) == synth["rows"]
    assert set(excluded["key"]) == bad
    assert not bad & set(clean["key"])
    clean2, excluded2 = split(annotated, keep_unverified=True)
    assert set(excluded2["key"]) == set(synth["planted_keys"])
    assert set(synth["malformed_keys"]) <= set(clean2["key"])


def test_num_proc_gives_the_same_dataset(synth: dict[str, Any], hf_cache: Path) -> None:
    ds = _load(synth, hf_cache)
    hygiene = Annotator(_lists(synth))
    one = annotate(ds, hygiene, batch_size=700)
    two = annotate(ds, hygiene, batch_size=700, num_proc=2)
    assert two.with_format("arrow")[:].equals(one.with_format("arrow")[:])
    _check_truth(_decisions(two), synth)
    _clean, excluded = split(two, num_proc=2)
    assert set(excluded["key"]) == set(synth["planted_keys"]) | set(synth["malformed_keys"])


def test_streaming_iterable_dataset(synth: dict[str, Any], hf_cache: Path) -> None:
    ds = _load(synth, hf_cache, streaming=True)
    assert isinstance(ds, datasets.IterableDataset)
    annotated = annotate(ds, _lists(synth), batch_size=512)
    _check_truth(_decisions(annotated), synth)
    clean, excluded = split(annotated)
    assert {r["key"] for r in excluded.with_format(None)} == \
        set(synth["planted_keys"]) | set(synth["malformed_keys"])
    assert sum(1 for _ in clean.with_format(None)) == \
        synth["rows"] - len(synth["planted_keys"]) - len(synth["malformed_keys"])


def test_pickles_without_its_lists_and_loads_them_lazily(synth: dict[str, Any]) -> None:
    hygiene = Annotator(_lists(synth))
    data = pickle.dumps(hygiene)
    # the pickle names the lists; it does not hold their entries or an index
    assert len(data) < 4096
    restored = pickle.loads(data)
    assert restored._plan is None and restored.fingerprint == hygiene.fingerprint
    import pyarrow.parquet as pq

    batch = pq.read_table(synth["manifest"] / synth["files"][0])
    assert restored(batch).column(DECISION).equals(hygiene(batch).column(DECISION))
    assert restored._plan is not None


def test_fingerprint_follows_list_content_not_path(synth: dict[str, Any], tmp_path: Path) -> None:
    from datasets.fingerprint import Hasher

    lists = _lists(synth)
    a, b = Annotator(lists), Annotator(lists)
    assert a.fingerprint == b.fingerprint
    assert Hasher.hash(a) == Hasher.hash(b) == Hasher.hash(pickle.loads(pickle.dumps(a)))
    # same content under another name: same fingerprint; changed content: a new one
    moved = tmp_path / "moved"
    shutil.copytree(synth["dir"] / "lists", moved)
    c = Annotator([f"md5={moved / 'md5.txt'}", f"url-sha256={moved / 'urls.csv'}"])
    assert c.fingerprint == a.fingerprint
    md5 = moved / "md5.txt"
    md5.write_text(md5.read_text() + "0" * 32 + "\n")
    d = Annotator([f"md5={md5}", f"url-sha256={moved / 'urls.csv'}"])
    assert d.fingerprint != a.fingerprint
    assert Hasher.hash(d) != Hasher.hash(a)
    assert Annotator(lists, decision_column="verdict").fingerprint != a.fingerprint


def test_map_cache_is_reused_only_for_the_same_lists(synth: dict[str, Any], hf_cache: Path,
                                                     tmp_path: Path) -> None:
    ds = _load(synth, hf_cache)
    first = annotate(ds, _lists(synth))
    again = annotate(ds, Annotator(_lists(synth)))
    assert [f["filename"] for f in again.cache_files] == [f["filename"] for f in first.cache_files]
    # a list with one more entry (the first planted row's md5 is already in it; add a
    # clean row's) must not be served from the cache
    moved = tmp_path / "lists2"
    shutil.copytree(synth["dir"] / "lists", moved)
    flagged = set(synth["planted_keys"]) | set(synth["malformed_keys"])
    clean_row = ds.filter(lambda r: r["key"] not in flagged)[0]
    (moved / "md5.txt").write_text((moved / "md5.txt").read_text() + clean_row["md5"] + "\n")
    changed = annotate(ds, [f"md5={moved / 'md5.txt'}", f"url-sha256={moved / 'urls.csv'}"])
    assert [f["filename"] for f in changed.cache_files] != [f["filename"] for f in first.cache_files]
    assert _decisions(changed)[clean_row["key"]] == "excluded"


def test_bad_list_fails_when_the_annotator_is_made(tmp_path: Path, synth: dict[str, Any]) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("0" * 32 + "\nnot-a-hash\n")
    with pytest.raises(ListError, match="line 2"):
        Annotator([f"md5={bad}"])


def test_rejects_python_batches(synth: dict[str, Any]) -> None:
    hygiene = Annotator(_lists(synth))
    with pytest.raises(TypeError, match="with_format"):
        hygiene({"md5": ["0" * 32]})  # type: ignore[arg-type]


def test_worker_refuses_a_list_changed_after_the_annotator(synth: dict[str, Any], tmp_path: Path) -> None:
    """A worker (num_proc > 1) re-reads the lists; results computed from other lists
    than the fingerprint names would poison the datasets cache, so it refuses."""
    moved = tmp_path / "lists3"
    shutil.copytree(synth["dir"] / "lists", moved)
    hygiene = Annotator([f"md5={moved / 'md5.txt'}"])
    (moved / "md5.txt").write_text((moved / "md5.txt").read_text() + "0" * 32 + "\n")
    worker = pickle.loads(pickle.dumps(hygiene))
    import pyarrow.parquet as pq

    with pytest.raises(ListError, match="changed after the Annotator"):
        worker(pq.read_table(synth["manifest"] / synth["files"][0]))


def test_a_dataset_without_the_hash_column_is_told_before_map(synth: dict[str, Any],
                                                               hf_cache: Path) -> None:
    """It was a bare pyarrow KeyError from inside map."""
    from datahygiene.errors import InputError

    ds = _load(synth, hf_cache).remove_columns(["md5"])
    with pytest.raises(InputError, match=r"dataset: no hash column 'md5' \(columns: key, url"):
        annotate(ds, _lists(synth))
    hygiene = Annotator(_lists(synth))
    with pytest.raises(InputError, match="no hash column 'md5'"):
        ds.with_format("arrow").map(hygiene, batched=True)
