"""Signed notes and checkpoints against the published C2SP / Go sumdb vectors, and DSSE."""

from __future__ import annotations

import base64

import pytest

from datahygiene.audit import dsse
from datahygiene.audit.note import Checkpoint, NoteError, Signer, Verifier, key_id, open_note, sign_note

# golang.org/x/mod/sumdb/note documentation example
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_SIG = ("\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotp"
          "RZb6KE6RyyBwJnAM=\n")
# c2sp.org/signed-note example
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi"
             "2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n").encode()


def test_go_vector_byte_for_byte() -> None:
    s = Signer.parse(GO_SKEY)
    assert s.encode() == GO_SKEY
    assert s.verifier.encode() == GO_VKEY
    assert key_id("PeterNeumann", s.verifier.public) == 0xC74F20A3
    note = sign_note(GO_TEXT, s)
    assert note == (GO_TEXT + "\n" + GO_SIG).encode()
    assert open_note(note, Verifier.parse(GO_VKEY)) == GO_TEXT


def test_spec_vector_verifies_and_tamper_fails() -> None:
    v = Verifier.parse(SPEC_VKEY)
    assert open_note(SPEC_NOTE, v) == "This is an example message.\n"
    with pytest.raises(NoteError):
        open_note(SPEC_NOTE.replace(b"example message", b"example massage"), v)
    with pytest.raises(NoteError):  # a different key with the same name is not "known"
        open_note(SPEC_NOTE, Signer.generate("example.com/foo").verifier)


@pytest.mark.parametrize("bad", [GO_VKEY.replace("c74f20a3", "c74f20a4"), "PeterNeumann+c74f20a3",
                                 "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                                 GO_VKEY[:-4]])
def test_bad_verifier_keys(bad: str) -> None:
    with pytest.raises(NoteError):
        Verifier.parse(bad)


def test_flipped_signature_byte_fails() -> None:
    note = bytearray(sign_note(GO_TEXT, Signer.parse(GO_SKEY)))
    i = note.rindex(b" ") + 10
    note[i] = ord("A") if note[i] != ord("A") else ord("B")
    with pytest.raises(NoteError):
        open_note(bytes(note), Verifier.parse(GO_VKEY))


def test_checkpoint_round_trip() -> None:
    cp = Checkpoint("example.invalid/log", 16, bytes(range(32)))
    assert cp.text() == f"example.invalid/log\n16\n{base64.b64encode(bytes(range(32))).decode()}\n"
    assert Checkpoint.parse(cp.text()) == cp
    for bad in ["example.invalid/log\n016\nAAAA\n", "x\n1\n" + base64.b64encode(b"short").decode() + "\n",
                "x\n1\n"]:
        with pytest.raises(NoteError):
            Checkpoint.parse(bad)


def test_dsse_pae_and_round_trip() -> None:
    # the worked example in the DSSE protocol description
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    s = Signer.parse(GO_SKEY)
    env = dsse.sign_envelope(dsse.statement([{"name": "x", "digest": {"sha256": "00" * 32}}], {"a": 1}), s)
    assert dsse.open_envelope(env, s.verifier)["predicate"] == {"a": 1}
    payload = base64.b64decode(env["payload"]).replace(b'"a":1', b'"a":2')
    with pytest.raises(dsse.EnvelopeError):
        dsse.open_envelope({**env, "payload": base64.b64encode(payload).decode()}, s.verifier)
    with pytest.raises(dsse.EnvelopeError):
        dsse.open_envelope({**env, "payloadType": "text/plain"}, s.verifier)
