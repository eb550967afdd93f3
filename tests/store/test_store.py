"""The local list store: versions, fingerprints, encryption at rest, permissions,
wrong keys, crash safety, and scans that name a stored snapshot."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from datahygiene.cli import cli
from datahygiene.errors import ConfigError, ListError
from datahygiene.plugins import discover
from datahygiene.store import ListStore
from datahygiene.store import snapshots as snapmod
from datahygiene.store.source import hashlists_to_entries

KEY_ENV = "DH_TEST_STORE_KEY"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A manifest of 40 rows with md5/sha1 columns; rows 3, 17 and 29 are in the list."""
    rng = np.random.default_rng(5)
    md5 = rng.integers(0, 256, (40, 16), dtype=np.uint8)
    sha1 = rng.integers(0, 256, (40, 20), dtype=np.uint8)
    hexes = [bytes(r).hex() for r in md5]
    keys = [f"row{i:02d}" for i in range(40)]
    (tmp_path / "m").mkdir()
    pq.write_table(pa.table({"key": keys, "md5": hexes, "sha1": [bytes(r).hex() for r in sha1]}),
                   tmp_path / "m" / "part.parquet")
    noise = [bytes(r).hex() for r in rng.integers(0, 256, (30, 16), dtype=np.uint8)]
    listed = [hexes[3].upper(), *noise, hexes[17], "  " + hexes[29]]
    lst = tmp_path / "partner-md5.txt"
    lst.write_text("\n".join(listed) + "\n")
    (tmp_path / "partner-md5.txt.meta.toml").write_text(
        'partner = "placeholder-partner"\nname = "md5-list"\nversion = "2026-11"\n')
    monkeypatch.setenv(KEY_ENV, _key())
    monkeypatch.setenv("DATAHYGIENE_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("DATAHYGIENE_PLUGINS", "")  # the core alone, whatever else is installed
    return {"dir": tmp_path, "list": lst, "hexes": hexes, "listed": [v.strip().lower() for v in listed],
            "manifest": tmp_path / "m"}


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return res.exit_code, res.output


def test_import_scan_and_run_json_records_snapshot(env: dict) -> None:
    code, out = run("lists", "import", f"md5={env['list']}", "--name", "partner", "--key-env", KEY_ENV)
    assert code == 0, out
    assert "snapshot 1" in out and "33 entries" in out
    code, out = run("scan", "--manifest", str(env["manifest"]), "--list", "md5=store:partner",
                    "--out", str(env["dir"] / "run"), "-q")
    assert code == 0, out
    runj = json.loads((env["dir"] / "run" / "run.json").read_text())
    (lst,) = runj["lists"]
    assert lst["source"] == "store:partner@1"
    assert lst["version"] == "1" and lst["partner"] == "placeholder-partner"
    assert lst["stats"]["store_snapshot"] == 1
    assert lst["stats"]["upstream_version"] == "2026-11"
    assert "retrieved_at" not in lst  # the sidecar gave none: not the import time either
    idx = json.loads((env["dir"] / "store" / "lists" / "partner" / "index.json").read_text())
    assert lst["stats"]["snapshot_fingerprint"] == idx["snapshots"][0]["fingerprint"]
    ex = pq.read_table(env["dir"] / "run" / "restricted" / "exclusions.parquet")
    assert sorted(ex.column("key").to_pylist()) == ["row03", "row17", "row29"]
    # the store source without a signal loads every signal the snapshot holds
    code, out = run("scan", "--manifest", str(env["manifest"]), "--list", "store:partner@1",
                    "--out", str(env["dir"] / "run2"), "-q")
    assert code == 0, out
    assert "3 excluded" in out


def test_versions_never_overwrite_and_old_versions_stay_readable(env: dict) -> None:
    store = ListStore.open(None, create=True, key_ref={"env": KEY_ENV})
    reg = discover()
    from datahygiene.lists.spec import ListSpec
    from datahygiene.sources.files import FileListSource

    lists = FileListSource().load(ListSpec(path=str(env["list"]), signal="md5"), reg)
    rec1, new1 = store.write_snapshot("p", hashlists_to_entries(lists), {"source": "file"})
    rec_same, new_same = store.write_snapshot("p", hashlists_to_entries(lists), {"source": "file"})
    assert (rec1["version"], new1, rec_same["version"], new_same) == (1, True, 1, False)
    lines = env["list"].read_text().splitlines()
    env["list"].write_text("\n".join(lines[:-1]) + "\n")  # one entry withdrawn
    lists2 = FileListSource().load(ListSpec(path=str(env["list"]), signal="md5"), reg)
    rec2, new2 = store.write_snapshot("p", hashlists_to_entries(lists2), {"source": "file"})
    assert rec2["version"] == 2 and new2 and rec2["fingerprint"] != rec1["fingerprint"]
    assert store.read_snapshot("p", 1).entries.num_rows == 33
    assert store.read_snapshot("p").entries.num_rows == 32
    code, out = run("scan", "--manifest", str(env["manifest"]), "--list", "md5=store:p@1",
                    "--out", str(env["dir"] / "r1"), "-q")
    assert code == 0 and "3 excluded" in out
    code, out = run("scan", "--manifest", str(env["manifest"]), "--list", "md5=store:p@2",
                    "--out", str(env["dir"] / "r2"), "-q")
    assert code == 0 and "2 excluded" in out


def test_encrypted_owner_only_and_no_value_in_any_file(env: dict) -> None:
    code, out = run("lists", "import", f"md5={env['list']}", "--name", "partner", "--key-env", KEY_ENV)
    assert code == 0, out
    root = env["dir"] / "store"
    blob = b""
    for p in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))
        if p.is_file():
            blob += p.read_bytes()
    for v in env["listed"]:
        assert v.encode() not in blob and v.upper().encode() not in blob
        assert bytes.fromhex(v) not in blob
    assert os.environ[KEY_ENV].encode() not in blob
    code, out = run("lists", "stored")
    assert code == 0 and "partner" in out and "md5:33" in out
    header, _, first = out.splitlines()[:3]
    assert "scan index" in header and " yes " in first  # imports write the index
    assert not any(v in out for v in env["listed"])


def test_wrong_key_fails_with_one_line(env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("lists", "import", f"md5={env['list']}", "--name", "p", "--key-env", KEY_ENV)[0] == 0
    monkeypatch.setenv(KEY_ENV, _key())
    res = CliRunner().invoke(cli, ["scan", "--manifest", str(env["manifest"]), "--list",
                                   "md5=store:p", "--out", str(env["dir"] / "r"), "-q"])
    assert res.exit_code == ListError.exit_code
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert lines == [f"datahygiene: error: {env['dir'] / 'store'}: wrong store key (the key named "
                     "in store.toml does not open this store)"]
    monkeypatch.setenv(KEY_ENV, "not a key")
    with pytest.raises(ConfigError, match="32 random bytes"):
        ListStore.open(None)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=f"environment variable {KEY_ENV} is not set"):
        ListStore.open(None)


def test_altered_or_moved_snapshot_does_not_open(env: dict) -> None:
    store = ListStore.open(None, create=True, key_ref={"env": KEY_ENV})
    ent = pa.table({"entry_id": ["a", "b"], "signal": ["md5", "md5"],
                    "value": [env["hexes"][0], env["hexes"][1]], "category": [None, None],
                    "kind": [None, None], "member": [None, None]})
    store.write_snapshot("x", ent, {})
    store.write_snapshot("x", ent.slice(0, 1), {})
    d = env["dir"] / "store" / "lists" / "x"
    one, two = d / "snapshot-000001.dhs", d / "snapshot-000002.dhs"
    one.write_bytes(two.read_bytes())  # snapshot 2's bytes presented as snapshot 1
    with pytest.raises(ListError, match="cannot decrypt"):
        store.read_snapshot("x", 1)
    data = bytearray(two.read_bytes())
    data[-5] ^= 1
    two.write_bytes(bytes(data))
    with pytest.raises(ListError, match="cannot decrypt"):
        store.read_snapshot("x", 2)


def test_crash_before_index_update_leaves_previous_snapshot(env: dict,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store = ListStore.open(None, create=True, key_ref={"env": KEY_ENV})
    ent = pa.table({"entry_id": ["a"], "signal": ["md5"], "value": [env["hexes"][0]],
                    "category": [None], "kind": [None], "member": [None]})
    store.write_snapshot("x", ent, {})

    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ListStore, "_write_index", boom)
    bigger = pa.concat_tables([ent, ent.set_column(0, "entry_id", pa.array(["b"]))])
    with pytest.raises(OSError):
        store.write_snapshot("x", bigger, {})
    monkeypatch.undo()
    monkeypatch.setenv("DATAHYGIENE_STORE", str(env["dir"] / "store"))
    assert store.latest_version("x") == 1
    assert store.read_snapshot("x").entries.num_rows == 1
    rec, new = store.write_snapshot("x", bigger, {})
    assert new and rec["version"] == 3  # the orphaned file 2 is never reused
    assert not list((env["dir"] / "store" / "lists" / "x").glob(".tmp-*"))


def test_group_readable_store_refused(env: dict) -> None:
    ListStore.open(None, create=True, key_ref={"env": KEY_ENV})
    os.chmod(env["dir"] / "store", 0o750)
    with pytest.raises(ConfigError, match="chmod 700"):
        ListStore.open(None)


def test_fingerprint_is_order_and_spelling_independent(env: dict) -> None:
    a = pa.table({"entry_id": ["1", "2"], "signal": ["md5", "pdq"], "value": ["x", "y"],
                  "category": [None, "A1"], "kind": ["image", None], "member": ["7", None]})
    b = a.take([1, 0])
    assert snapmod.fingerprint_entries(a) == snapmod.fingerprint_entries(b)
    c = a.set_column(3, "category", pa.array([None, "A2"]))
    assert snapmod.fingerprint_entries(a) != snapmod.fingerprint_entries(c)


def test_sync_config_refuses_inline_secrets(env: dict) -> None:
    store = ListStore.open(None, create=True, key_ref={"env": KEY_ENV})
    with pytest.raises(ConfigError, match="password must be a reference"):
        store.set_sync_config("n", "ncmec", {"username": {"env": "U"}, "password": "hunter2"})
    store.set_sync_config("n", "ncmec", {"username": {"env": "U"}, "password": {"env": "P"}})
    assert "hunter2" not in (env["dir"] / "store" / "lists" / "n" / "index.json").read_text()


def test_bad_names_and_versions(env: dict) -> None:
    code, out = run("scan", "--manifest", str(env["manifest"]), "--list", "md5=store:../x",
                    "--out", str(env["dir"] / "r"), "-q")
    assert code == ConfigError.exit_code and "list name" in out
    code, out = run("scan", "--manifest", str(env["manifest"]), "--list", "md5=store:x@latest",
                    "--out", str(env["dir"] / "r"), "-q")
    assert code == ConfigError.exit_code and "snapshot number" in out


def test_column_digest_fast_path_matches_the_general_one() -> None:
    """Columns with every value present or none are digested from Arrow's buffers; the
    bytes fed to the fingerprint must be exactly those of the general path, or stores
    written before would no longer verify."""
    import hashlib

    import pyarrow.compute as pc

    def general(h: hashlib._Hash, col: pa.Array) -> None:
        col = col.cast(pa.large_string())
        h.update(np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=np.uint8).tobytes())
        filled = pc.fill_null(col, "")
        h.update(np.asarray(pc.binary_length(filled).to_numpy(zero_copy_only=False), dtype="<u4").tobytes())
        for v in filled.to_pylist():
            h.update(v.encode())

    cases = [pa.array([f"v{i}" * (i % 5) for i in range(1000)]), pa.array([None] * 50, pa.string()),
             pa.array(["a", None, "bcd"]), pa.array([], pa.string()),
             pa.array([f"x{i}" for i in range(100)]).slice(7, 50),
             pa.array([None] * 10, pa.string()).slice(2, 5), pa.array(["", "", "q"]),
             pa.array(["\u00e9", "\u00fc" * 3])]
    for col in cases:
        a, b = hashlib.sha256(), hashlib.sha256()
        general(a, col)
        snapmod._column_digest(b, col)
        assert a.digest() == b.digest()


def test_canonical_entries_sorts_every_column_and_drops_exact_duplicates_only() -> None:
    import random

    rng = random.Random(3)
    pool = [None, "", "a", "b", "ab", "é", "line:1", "line:10"]
    cols = snapmod.ENTRY_COLUMNS
    for _ in range(200):
        n = rng.randint(1, 40)
        rows = [tuple(rng.choice(pool) for _ in cols) for _ in range(n)]
        rows += rows[: rng.randint(0, n)]  # some exact duplicates
        table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)}, schema=snapmod.ENTRY_SCHEMA)
        # byte order of UTF-8 is code-point order; nulls sort last
        expected = sorted(set(rows), key=lambda r: tuple((v is None, v or "") for v in r))
        got = snapmod.canonical_entries(table)
        assert [tuple(d[c] for c in cols) for d in got.to_pylist()] == expected


def test_import_and_inspect_show_the_fingerprint_run_json_records(env: dict) -> None:
    """The store's snapshot digest and a list's per-signal fingerprint are different
    digests: `lists import` names both, `lists stored` calls its own the snapshot
    digest, and `lists inspect store:NAME --store DIR` prints the one run.json holds."""
    code, out = run("lists", "import", f"md5={env['list']}", "--name", "p", "--key-env", KEY_ENV)
    assert code == 0, out
    snapshot_digest = out.split("snapshot digest ")[1].split(")")[0]
    list_fp = out.split("md5: list fingerprint ")[1].split()[0]
    assert snapshot_digest != list_fp and snapshot_digest.startswith("sha256:")
    code, out = run("lists", "stored")
    assert code == 0 and "snapshot digest" in out.splitlines()[0] and snapshot_digest in out
    code, out = run("lists", "inspect", "store:p@1", "--store", str(env["dir"] / "store"))
    assert code == 0 and f"fingerprint  {list_fp}" in out, out
    code, out = run("scan", "--manifest", str(env["manifest"]), "--list", "md5=store:p@1",
                    "--out", str(env["dir"] / "r"), "-q")
    assert code == 0, out
    recorded = json.loads((env["dir"] / "r" / "run.json").read_text())["lists"]
    assert [entry["fingerprint"] for entry in recorded] == [list_fp]
    code, out = run("lists", "inspect", str(env["list"]), "--store", str(env["dir"] / "store"))
    assert code == 2 and "--store applies to store:NAME lists" in out


def test_an_import_that_drops_a_signal_is_refused(env: dict) -> None:
    """A list stored as md5 and re-imported under the same name as url-sha256 would make
    every scan of store:NAME stop checking md5 without a word: refused unless asked."""
    code, out = run("lists", "import", f"md5={env['list']}", "--name", "p", "--key-env", KEY_ENV)
    assert code == 0, out
    urls = env["dir"] / "urls.txt"
    urls.write_text("".join(f"{i:064x}\n" for i in range(1, 6)))
    code, out = run("lists", "import", f"url-sha256={urls}", "--name", "p")
    assert code == 2 and "snapshot 1 holds md5; this list has no md5" in out
    assert "--allow-signal-change" in out
    assert json.loads((env["dir"] / "store" / "lists" / "p" / "index.json").read_text()
                      )["snapshots"][-1]["version"] == 1
    empty = env["dir"] / "empty.txt"
    empty.write_text("# nothing listed\n")
    code, out = run("lists", "import", f"md5={empty}", "--name", "p")
    assert code == 2 and "this list has no md5" in out  # an empty md5 list drops md5 too
    code, out = run("lists", "import", f"url-sha256={urls}", "--name", "p", "--allow-signal-change")
    assert code == 0 and "stored as snapshot 2" in out


def test_stored_names_an_unknown_list_and_import_says_the_key_option_is_unused(env: dict) -> None:
    code, out = run("lists", "import", f"md5={env['list']}", "--name", "p", "--key-env", KEY_ENV)
    assert code == 0 and "note:" not in out
    code, out = run("lists", "stored", "nope")
    assert code == 4 and "no stored list 'nope' (stored: p)" in out
    code, out = run("lists", "import", f"md5={env['list']}", "--name", "p", "--key-env", "OTHER")
    assert code == 0 and "used only when creating a store" in out


def test_a_key_file_others_can_read_is_refused(env: dict) -> None:
    key = env["dir"] / "store.key"
    key.write_text(_key() + "\n")
    key.chmod(0o644)
    code, out = run("lists", "import", f"md5={env['list']}", "--name", "p", "--store",
                    str(env["dir"] / "s2"), "--key-file", str(key))
    assert code == 2 and "store key file is accessible to other users (mode 644)" in out
    key.chmod(0o600)
    code, out = run("lists", "import", f"md5={env['list']}", "--name", "p", "--store",
                    str(env["dir"] / "s2"), "--key-file", str(key))
    assert code == 0, out


def test_entries_skipped_at_import_are_said_and_recorded(env: dict) -> None:
    lst = env["dir"] / "sk.txt"
    lst.write_text(env["listed"][0] + "\nnot-hex\n" + env["listed"][1] + "\n")
    (env["dir"] / "sk.txt.meta.toml").write_text('signal = "md5"\non_bad_entry = "skip"\n')
    code, out = run("lists", "import", str(lst), "--name", "sk", "--key-env", KEY_ENV)
    assert code == 0 and "note: 1 bad entry skipped" in out
    code, out = run("scan", "--manifest", str(env["manifest"]), "--list", "md5=store:sk",
                    "--out", str(env["dir"] / "r"), "-q")
    assert code == 0, out
    stats = json.loads((env["dir"] / "r" / "run.json").read_text())["lists"][0]["stats"]
    assert stats["skipped_bad_entries_at_import"] == 1


def test_a_lost_or_damaged_snapshot_is_noticed_by_import_and_stored(env: dict) -> None:
    """Scans read a snapshot's scan index, so a deleted or altered snapshot file went
    unnoticed: `lists import` said "unchanged" and `lists stored` listed it."""
    code, out = run("lists", "import", f"md5={env['list']}", "--name", "p", "--key-env", KEY_ENV)
    assert code == 0, out
    snap = env["dir"] / "store" / "lists" / "p" / "snapshot-000001.dhs"
    blob = bytearray(snap.read_bytes())
    blob[len(blob) // 2] ^= 1
    snap.write_bytes(bytes(blob))
    code, out = run("lists", "import", f"md5={env['list']}", "--name", "p")
    assert code == 4 and snap.name in out
    snap.unlink()
    code, out = run("lists", "stored", "p")
    assert code == 4 and "snapshot 1 of p is missing" in out


def test_a_second_writer_of_a_stored_list_is_refused_while_one_writes(env: dict) -> None:
    """Two imports at once each read index.json and wrote it back: one snapshot was
    reported as stored and then missing from the list. A writer now holds the list's
    lock; another is refused at once, and writers of other lists are not held up."""
    code, out = run("lists", "import", f"md5={env['list']}", "--name", "p", "--key-env", KEY_ENV)
    assert code == 0, out
    other = ListStore.open(None)  # another writer: its own open of the lock
    with other.writing("p"):
        code, out = run("lists", "import", f"md5={env['list']}", "--name", "p")
        assert code == 2 and "another import or sync of this stored list is running" in out
        code, out = run("lists", "import", f"md5={env['list']}", "--name", "q")
        assert code == 0, out
    code, out = run("lists", "import", f"md5={env['list']}", "--name", "p")
    assert code == 0 and "unchanged; latest is snapshot 1" in out


def test_numbered_entries_come_out_in_the_canonical_order_of_a_sort_on_every_column() -> None:
    """Entries whose ids are a prefix and a number (a text list's ``line:N``) are put in
    the ids' string order without sorting strings (``line:10`` before ``line:9``,
    ``line:1`` before ``line:10``); with several lists, ids that tie or interleave take
    the general sort. Either way the canonical entries, and so the snapshot digest,
    are those of a plain sort on all six columns."""
    from datahygiene.lists.model import HashList, ListIdentity

    rng = np.random.default_rng(5)

    def numbered(signal: str, width: int, nums: list[int]) -> HashList:
        values = rng.integers(0, 256, size=(len(nums), width), dtype=np.uint8)
        return HashList.from_parsed(ListIdentity("p", signal, "1"), signal, values,
                                    pa.array(nums, pa.int64()), ref_prefix="line:")

    edge = [0, 1, 9, 10, 11, 19, 2, 20, 99, 100, 101, 109, 110, 10**16, 10**16 + 1, 10**17 - 1]
    many = [int(x) for x in rng.choice(10**7, size=3000, replace=False)] + edge
    cases = [
        [numbered("md5", 16, many)],
        # numbers too long for the integer key: the general sort
        [numbered("md5", 16, [int(x) for x in rng.choice(10**18, size=50, replace=False)])],
        # ids that tie across lists
        [numbered("md5", 16, edge), numbered("sha1", 20, [*edge[::-1], 12345])],
    ]
    cols = snapmod.ENTRY_COLUMNS
    for lists, in_order in zip(cases, [True, False, False], strict=True):
        entries = hashlists_to_entries(lists)
        # the numbered list's entries arrive in canonical order: no sort is needed
        assert (snapmod._canonical_order(entries) is None) == in_order
        got = snapmod.canonical_entries(entries)
        expected = entries.sort_by([(c, "ascending") for c in cols])
        assert got.to_pylist() == expected.to_pylist()
        assert snapmod._digest_in_order(got) == snapmod._digest_in_order(expected)
        ids = got.column("entry_id").to_pylist()
        assert ids == sorted(ids, key=lambda s: s.encode())
