"""in-toto Statement v1 in a DSSE envelope, signed with the curator's Ed25519 key.

DSSE signs PAE(payloadType, payload) -- the type is bound into the signature, so a
payload cannot be replayed as another kind of document. We use the same Ed25519 key
as the checkpoints; ``keyid`` is the signed-note verifier key (name+id+key) so an
auditor can tell which key to check with.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from datahygiene.audit.note import Signer, Verifier

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://datahygiene.invalid/attestation/hygiene-scan/v1"


class EnvelopeError(ValueError):
    pass


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def statement(subjects: list[dict[str, Any]], predicate: dict[str, Any]) -> dict[str, Any]:
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE,
            "predicate": predicate}


def sign_envelope(stmt: dict[str, Any], signer: Signer) -> dict[str, Any]:
    payload = json.dumps(stmt, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    sig = signer.sign(pae(PAYLOAD_TYPE, payload))
    return {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": signer.verifier.encode(), "sig": base64.b64encode(sig).decode()}]}


def open_envelope(env: Any, verifier: Verifier) -> dict[str, Any]:
    """The statement, if ``verifier`` signed the envelope; EnvelopeError otherwise."""
    if not isinstance(env, dict) or env.get("payloadType") != PAYLOAD_TYPE:
        raise EnvelopeError("not an in-toto DSSE envelope")
    try:
        payload = base64.b64decode(env["payload"], validate=True)
        sigs = [(s.get("keyid"), base64.b64decode(s["sig"], validate=True)) for s in env["signatures"]]
    except (KeyError, TypeError, AttributeError, binascii.Error, ValueError):
        raise EnvelopeError("malformed envelope") from None
    mine = [sig for kid, sig in sigs if kid == verifier.encode()]
    if not mine:
        raise EnvelopeError("no signature by the expected key")
    if not all(verifier.verify(pae(PAYLOAD_TYPE, payload), s) for s in mine):
        raise EnvelopeError("signature does not verify")
    try:
        stmt = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError("payload is not JSON") from None
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise EnvelopeError("payload is not an in-toto Statement v1")
    return stmt
