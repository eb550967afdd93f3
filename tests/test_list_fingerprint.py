"""A list's fingerprint is computed on a thread of its own while the index is built
(datahygiene/lists/model.py): it must still be the same value wherever the list goes."""

from __future__ import annotations

import hashlib
import os
import pickle
import select
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import datahygiene.lists.model as model
from datahygiene.lists.model import HashList, ListIdentity, fingerprint


def _list(n: int = 1000) -> HashList:
    values = np.frombuffer(b"".join(hashlib.md5(f"synthetic-{i}".encode()).digest() for i in range(n)),
                           np.uint8).reshape(n, 16)
    return HashList.from_parsed(ListIdentity("synthetic", "placeholder", "1"), "md5", values,
                                pa.array(np.arange(1, n + 1, dtype=np.int64)), ref_prefix="line:")


def test_the_fingerprint_is_that_of_the_sorted_entries() -> None:
    hl = _list()
    assert hl.fingerprint == fingerprint("md5", np.sort(hl.values.view("S16").ravel()).view(np.uint8)
                                         .reshape(-1, 16))
    assert hl.describe()["fingerprint"] == hl.fingerprint


def test_a_pickled_list_carries_its_fingerprint_as_a_value() -> None:
    hl = _list()
    state = hl.__getstate__()
    assert isinstance(state["_fingerprint"], str)
    again = pickle.loads(pickle.dumps(hl))
    assert again.fingerprint == hl.fingerprint and np.array_equal(again.values, hl.values)


def test_a_process_forked_while_the_fingerprint_is_computed_computes_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The child has no fingerprint thread: waiting for it must not hang."""

    def slow_on_its_thread(signal: str, values: np.ndarray) -> str:
        if threading.current_thread().name == "datahygiene-fingerprint":
            time.sleep(30)
        return fingerprint(signal, values)

    monkeypatch.setattr(model, "fingerprint", slow_on_its_thread)
    hl = _list()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, then leave at once
        try:
            os.write(write, hl.fingerprint.encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 20)
        assert ready, "the forked process waited for a thread it does not have"
        answer = os.read(read, 200).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert answer == fingerprint("md5", hl.values)
