"""Conformance checks for ``datahygiene.sources`` plugins (list sources).

What a scan relies on, from the HashList model (datahygiene/lists/model.py) and the
way the scan, run.json and the store use loaded lists: a stable identity; entries in
the signal's canonical form, sorted and unique, which the fingerprint covers; opaque
entry references, which reach restricted outputs and so must never be (or hold) the
value they stand for; descriptions that are JSON and hold no value; loads that are
repeatable; objects that pickle. For a :class:`SyncingSource`, optionally, that a
sync resumed from any checkpoint it committed ends where an uninterrupted one does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene import kernels
from datahygiene.lists.model import HashList, ListIdentity, fingerprint
from datahygiene.lists.spec import ListSpec
from datahygiene.plugins import Registry, discover
from datahygiene.signals.hexcodec import hex_strings
from datahygiene.sources.base import ListSource, SyncingSource
from datahygiene.testing._rules import (
    broken,
    hex_needles,
    holds_any,
    holds_hex,
    json_text,
    pickled,
    rule,
    unpickled,
)

_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")


def check_list_source(
    source_or_cls: ListSource | type[ListSource],
    spec: ListSpec,
    registry: Registry | None = None,
    *,
    sync_config: Mapping[str, Any] | None = None,
    secrets: Sequence[str] = (),
    max_resumes: int = 3,
) -> list[HashList]:
    """Load ``spec`` through the source (twice) and check every list it returns.

    ``spec`` points at the plugin author's synthetic fixture (never a real list); it
    must yield at least one entry. ``registry``: where signal types are looked up
    (default: every installed plugin). A class is instantiated without arguments, as
    the scan does. ``secrets``: strings (credentials) that must appear in no repr,
    description or pickle of the source. Returns the lists of the first load.

    ``sync_config`` (a :class:`SyncingSource` only): a sync configuration pointing at
    the author's test server (a loopback server, synthetic records); the sync is then
    run once from scratch and again from ``max_resumes`` of the checkpoints it
    committed (first, last, evenly between), each resumed run applied to the state as of its
    checkpoint, and all must end in the same entries (see :func:`check_sync_resumes`).
    Without one the sync is not checked: there is no generic way to reach a partner.
    """
    registry = registry if registry is not None else discover()
    source = source_or_cls() if isinstance(source_or_cls, type) else source_or_cls
    cls = type(source)
    rule(isinstance(source, ListSource), "a list source subclasses datahygiene.sources.base.ListSource")
    name = getattr(cls, "name", None)
    rule(isinstance(name, str) and name and name == name.lower(), "name is a non-empty lower-case string")
    clone = unpickled(pickled(source, "a list source"), "a list source")
    rule(type(clone) is cls, "a list source unpickles to its own class")

    lists = source.load(spec, registry)
    rule(
        isinstance(lists, list) and all(isinstance(hl, HashList) for hl in lists),
        "load() returns a list of HashList",
    )
    rule(lists, "load() returned no list for the fixture: one HashList per signal type it holds")
    rule(
        sum(len(hl) for hl in lists) > 0,
        "the fixture's lists hold no entry: give a fixture with entries, or nothing is checked",
    )
    signals = [hl.signal for hl in lists]
    rule(len(set(signals)) == len(signals), "load() returns one HashList per signal type, not several")
    for hl in lists:
        _check_hashlist(hl, registry, spec)

    again = source.load(spec, registry)
    rule(isinstance(again, list) and len(again) == len(lists), "loading twice gives the same lists")
    for a, b in zip(lists, again, strict=True):
        _check_same(a, b)

    # nothing the source or its lists show holds an entry value or a credential
    needles = hex_needles(v for hl in lists for v in hex_strings(hl.values).to_pylist())
    texts = [("the source's repr", repr(source))]
    describe = getattr(source, "describe", None)
    if callable(describe):
        texts.append(("the source's describe()", json_text(describe(), "the source's describe()")))
    for hl in lists:
        texts += [
            ("a list's repr", repr(hl)),
            ("a list's describe()", json_text(hl.describe(), "describe()")),
        ]
    for what, text in texts:
        rule(not holds_hex(text, needles), f"{what} holds an entry value")
        rule(not holds_any(text, secrets), f"{what} holds a credential")
    rule(not holds_any(pickled(source, "a list source"), secrets), "a pickled source holds a credential")

    if sync_config is not None:
        if not isinstance(source, SyncingSource):
            broken("sync_config is given for a source that does not sync (not a SyncingSource)")
        check_sync_resumes(source, sync_config, max_resumes=max_resumes, secrets=secrets)
    return lists


def _check_hashlist(hl: HashList, registry: Registry, spec: ListSpec) -> None:
    ident = hl.identity
    rule(isinstance(ident, ListIdentity), "identity is a ListIdentity")
    for field in ("partner", "name", "version"):
        value = getattr(ident, field)
        rule(isinstance(value, str) and value.strip(), f"identity.{field} is a non-empty string")
    rule(
        ident.retrieved_at is None or isinstance(ident.retrieved_at, str),
        "identity.retrieved_at is a string or None",
    )
    rule(hl.id == f"{ident.partner}/{ident.name}@{ident.version}", "id is partner/name@version")
    rule(hl.signal in registry.names("signals"), "signal names a registered signal type")
    if spec.signal is not None:
        rule(hl.signal == spec.signal, "a spec naming its signal gets lists of that signal only")
    sig = registry.signal(hl.signal)
    where = f"list {hl.id} ({hl.signal})"

    values = hl.values
    rule(
        isinstance(values, np.ndarray) and values.dtype == np.uint8 and values.ndim == 2,
        f"{where}: values are a 2-D uint8 array",
    )
    rule(values.shape[1] == sig.width, f"{where}: each value is the signal's width ({sig.width} bytes)")
    n = values.shape[0]
    rule(len(hl) == n, f"{where}: len() is the number of entries")
    rule(
        kernels.rows_strictly_increasing(np.ascontiguousarray(values)),
        f"{where}: values are sorted and unique (build lists with HashList.from_parsed)",
    )
    # canonical: what the signal parses the hex of each value into is the value itself
    # (the store keeps values as hex and parses them back the same way)
    if n:
        parsed = sig.parse_entries(hex_strings(values))
        rule(
            bool(parsed.valid.all()) and np.array_equal(parsed.values, values),
            f"{where}: values are in the signal's canonical form (normalised)",
        )

    fp = hl.fingerprint
    rule(isinstance(fp, str) and _FINGERPRINT.fullmatch(fp), f"{where}: fingerprint is 'sha256:' + 64 hex")
    rule(
        fp == fingerprint(hl.signal, np.ascontiguousarray(values)),
        f"{where}: fingerprint covers exactly the entries (datahygiene.lists.model.fingerprint)",
    )

    refs = hl.refs
    rule(isinstance(refs, pa.Array), f"{where}: refs is an Arrow array")
    if hl.ref_order is None:
        rule(len(refs) == n, f"{where}: one reference per entry")
    else:
        order = hl.ref_order
        rule(
            isinstance(order, np.ndarray) and order.shape == (n,) and order.dtype.kind in "iu",
            f"{where}: ref_order holds one integer position per entry",
        )
        rule(
            n == 0 or (int(order.min()) >= 0 and int(order.max()) < len(refs)),
            f"{where}: ref_order points inside refs",
        )
    if hl.categories is not None:
        rule(
            isinstance(hl.categories, pa.Array) and len(hl.categories) == len(refs),
            f"{where}: categories are aligned with refs",
        )
    spelled = hl.ref_strings(np.arange(n, dtype=np.int64))
    rule(
        isinstance(spelled, pa.Array) and len(spelled) == n and pa.types.is_string(spelled.type),
        f"{where}: ref_strings() gives one string per entry",
    )
    rule(
        spelled.null_count == 0 and (n == 0 or pc.min(pc.binary_length(spelled)).as_py() > 0),
        f"{where}: every entry has a non-empty reference",
    )
    own = hex_strings(values).to_pylist() if n else []
    needles = hex_needles(own)
    for i, ref in enumerate(spelled.to_pylist()):
        # entry i's own value, and any other entry's, in either case
        rule(
            not holds_hex(ref, needles),
            f"{where}: entry references are opaque: a reference "
            f"holds an entry value (entry {i} of the sorted list)",
        )

    rule(
        hl.threshold is None
        or (isinstance(hl.threshold, int) and not isinstance(hl.threshold, bool) and hl.threshold >= 0),
        f"{where}: threshold is None or an int >= 0",
    )
    rule(isinstance(hl.source, str), f"{where}: source is a string")
    rule(isinstance(hl.stats, dict), f"{where}: stats is a dict")
    json_text(hl.stats, f"{where}: stats")
    desc = hl.describe()
    rule(isinstance(desc, dict), f"{where}: describe() returns a dict")
    json_text(desc, f"{where}: describe()")
    rule(
        desc.get("id") == hl.id
        and desc.get("signal") == hl.signal
        and desc.get("entries") == n
        and desc.get("fingerprint") == fp,
        f"{where}: describe() gives id, signal, entries and fingerprint",
    )

    clone = unpickled(pickled(hl, f"{where}: a HashList"), f"{where}: a HashList")
    _check_same(hl, clone, "a pickled HashList is the same list")


def _check_same(a: HashList, b: HashList, why: str = "loading twice gives the same lists") -> None:
    rule(isinstance(b, HashList), why)
    rule(a.id == b.id and a.signal == b.signal, f"{why}: the same identity and signal, in the same order")
    rule(
        a.fingerprint == b.fingerprint and np.array_equal(a.values, b.values),
        f"{why}: list {a.id} ({a.signal}) has other entries or another fingerprint",
    )
    n = len(a)
    rule(
        a.ref_strings(np.arange(n, dtype=np.int64)).equals(b.ref_strings(np.arange(n, dtype=np.int64))),
        f"{why}: list {a.id} ({a.signal}) has other entry references",
    )
    ca, cb = a.aligned_categories(), b.aligned_categories()
    rule(
        (ca is None) == (cb is None) and (ca is None or cb is None or ca.equals(cb)),
        f"{why}: list {a.id} ({a.signal}) has other categories",
    )


# -- syncing sources ----------------------------------------------------------------------


def check_sync_resumes(
    source: SyncingSource, config: Mapping[str, Any], *, max_resumes: int = 3, secrets: Sequence[str] = ()
) -> None:
    """A sync resumed from a committed checkpoint ends where an uninterrupted one does.

    ``sync(config, None)`` must yield :class:`datahygiene.store.sync.SyncPage` objects
    (the store is what drives a sync) and commit at least one checkpoint on the
    author's fixture. Each checkpoint must be a JSON object (the store keeps it in a
    JSON file: it is passed back through a JSON round trip here too) holding no entry
    value; progress notes hold none either. Then, for up to ``max_resumes``
    checkpoints, ``sync(config, checkpoint)`` applied -- replace-by-id, tombstones
    removing, as the store applies pages -- to the state as of that checkpoint must
    give the final state of the uninterrupted sync: nothing lost, nothing left over.

    Not checked (no generic way to): a sync cut off mid-way by a fault; that belongs
    in the plugin's own tests against its loopback server.
    """
    from datahygiene.store.sync import SyncPage

    def run(checkpoint: dict[str, Any] | None) -> list[Any]:
        result = source.sync(dict(config), checkpoint)
        rule(isinstance(result, Iterable), "sync() returns an iterable of SyncPage")
        pages = list(result)
        rule(all(isinstance(p, SyncPage) for p in pages), "sync() yields SyncPage objects")
        return pages

    pages = run(None)
    # (values of 8 characters or more: shorter ones would be found by chance)
    values = {
        v
        for p in pages
        for u in p.updates
        for v in u.fingerprints.values()
        if isinstance(v, str) and len(v.strip()) >= 8
    }
    states: list[dict[str, Any]] = []  # the state as of each committed checkpoint
    checkpoints: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    for p in pages:
        for u in p.updates:
            rule(isinstance(u.entry_id, str) and u.entry_id, "every update names its entry id")
            pending[u.entry_id] = u
        if p.progress is not None:
            rule(isinstance(p.progress, str), "a page's progress is a string")
            rule(not holds_any(p.progress, values), "a page's progress note holds an entry value")
        if p.checkpoint is not None:
            rule(isinstance(p.checkpoint, dict), "a checkpoint is a JSON object (a dict)")
            text = json_text(p.checkpoint, "a checkpoint")
            rule(not holds_any(text, values), "a checkpoint holds an entry value")
            rule(not holds_any(text, secrets), "a checkpoint holds a credential")
            _apply(state, pending)
            states.append(dict(state))
            checkpoints.append(json.loads(text))
    rule(
        checkpoints,
        "a sync of the fixture commits at least one checkpoint (give sync_config a "
        "range the test server has records in)",
    )
    final = states[-1]
    # first, last and evenly between (first, middle, last by default)
    n, m = len(checkpoints), min(max(max_resumes, 0), len(checkpoints))
    picks = sorted({round(i * (n - 1) / (m - 1)) for i in range(m)}) if m > 1 else [0][:m]
    for k in picks:
        resumed = dict(states[k])
        pending = {}
        for p in run(checkpoints[k]):
            for u in p.updates:
                pending[u.entry_id] = u
            if p.checkpoint is not None:
                _apply(resumed, pending)
        rule(
            resumed == final,
            "a sync resumed from a committed checkpoint must end in the entries of "
            f"an uninterrupted sync (resumed from checkpoint {k + 1} of {len(checkpoints)})",
        )


def _apply(state: dict[str, Any], pending: dict[str, Any]) -> None:
    """Replace-by-id, as datahygiene.store.sync.apply_updates does."""
    for entry_id, u in pending.items():
        if u.deleted:
            state.pop(entry_id, None)
        else:
            state[entry_id] = (tuple(sorted(u.fingerprints.items())), u.category, u.kind, u.member_id)
    pending.clear()


__all__ = ["check_list_source", "check_sync_resumes"]
