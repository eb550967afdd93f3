"""C2SP signed notes (c2sp.org/signed-note) with Ed25519, and tlog checkpoints
(c2sp.org/tlog-checkpoint).

We use these formats, not our own, so that an auditor can check a checkpoint with
any existing implementation (Go's golang.org/x/mod/sumdb/note, the transparency-dev
tools) and so that our key files look like every other transparency log's:

* verifier key  ``<name>+<key id hex>+<base64(0x01 || 32-byte public key)>``
* signer key    ``PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || 32-byte seed)>``
* key id        first four bytes of SHA-256(name || 0x0A || 0x01 || public key)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 1
EM_DASH = "\u2014"


class NoteError(ValueError):
    """A key, note or checkpoint that does not parse or verify (never quotes secrets)."""


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise NoteError("key name must be non-empty, without spaces or '+'")


def key_id(name: str, public: bytes) -> int:
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public)
                          .digest()[:4], "big")


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("not valid base64") from None


@dataclass(frozen=True)
class Verifier:
    name: str
    id: int
    public: bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("verifier key must be NAME+KEYID+BASE64")
        name, hexid, data = parts
        _check_name(name)
        raw = _b64(data)
        if len(hexid) != 8 or len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("verifier key is not an Ed25519 signed-note key")
        try:
            kid = int(hexid, 16)
        except ValueError:
            raise NoteError("verifier key id is not hex") from None
        if kid != key_id(name, raw[1:]):
            raise NoteError("verifier key id does not match its key")
        return cls(name, kid, raw[1:])

    def encode(self) -> str:
        return f"{self.name}+{self.id:08x}+{base64.b64encode(bytes([ALG_ED25519]) + self.public).decode()}"

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(sig, msg)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Signer:
    name: str
    id: int
    seed: bytes

    @classmethod
    def generate(cls, name: str) -> Signer:
        _check_name(name)
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls.from_seed(name, seed)

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw)
        return cls(name, key_id(name, pub), seed)

    @classmethod
    def parse(cls, skey: str) -> Signer:
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("signer key must be PRIVATE+KEY+NAME+KEYID+BASE64")
        name, hexid, data = parts[2:]
        _check_name(name)
        raw = _b64(data)
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("signer key is not an Ed25519 signed-note key")
        s = cls.from_seed(name, raw[1:])
        if hexid != f"{s.id:08x}":
            raise NoteError("signer key id does not match its key")
        return s

    def encode(self) -> str:
        return (f"PRIVATE+KEY+{self.name}+{self.id:08x}+"
                f"{base64.b64encode(bytes([ALG_ED25519]) + self.seed).decode()}")

    @property
    def verifier(self) -> Verifier:
        pub = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw)
        return Verifier(self.name, self.id, pub)

    def sign(self, msg: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(msg)


def sign_note(text: str, signer: Signer) -> bytes:
    """The note: text (ending in a newline), a blank line, one signature line."""
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("note text must end in a newline and hold no blank line")
    body = text.encode()
    sig = signer.id.to_bytes(4, "big") + signer.sign(body)
    return body + f"\n{EM_DASH} {signer.name} {base64.b64encode(sig).decode()}\n".encode()


def open_note(note: bytes, verifier: Verifier) -> str:
    """Return the note's text if ``verifier``'s key signed it; raise NoteError otherwise.

    Follows the spec: signatures from unknown keys are ignored, a known key's
    signature that fails rejects the note, and no known signature rejects it too.
    """
    try:
        s = note.decode()
    except UnicodeDecodeError:
        raise NoteError("note is not UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in s):
        raise NoteError("note holds control characters")
    i = s.rfind("\n\n")
    if i < 0 or not s.endswith("\n"):
        raise NoteError("note has no signature block")
    text, sigs = s[: i + 1], s[i + 2:]
    found = False
    for line in sigs.splitlines():
        prefix = f"{EM_DASH} "
        if not line.startswith(prefix):
            raise NoteError("malformed signature line")
        name, _, b64 = line[len(prefix):].rpartition(" ")
        raw = _b64(b64)
        if len(raw) < 5:
            raise NoteError("malformed signature line")
        if name != verifier.name or int.from_bytes(raw[:4], "big") != verifier.id:
            continue
        if not verifier.verify(text.encode(), raw[4:]):
            raise NoteError(f"signature by {verifier.name} does not verify")
        found = True
    if not found:
        raise NoteError(f"no signature by the key {verifier.name}+{verifier.id:08x}")
    return text


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint must have origin, size and root lines")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin:
            raise NoteError("checkpoint origin is empty")
        if not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError("checkpoint size is not a decimal number")
        raw = _b64(root)
        if len(raw) != 32:
            raise NoteError("checkpoint root is not a 32-byte hash")
        return cls(origin, int(size), raw, tuple(lines[3:-1]))
