"""Keys and authenticated encryption for the list store.

Snapshots are sealed with AES-256-GCM. The associated data binds each ciphertext to
its list name, snapshot version and purpose, so a file copied under another name or
version fails to open instead of silently standing in for it. A small *key check*
(a sealed constant) is kept beside the store so that a wrong key is reported at once,
with one clear line, before any snapshot is touched.

The key never lives in the store: it comes from an environment variable or a key
file that the store's ``store.toml`` names by reference (``{ env = "NAME" }`` or
``{ file = "PATH" }``), the same convention as every other secret in datahygiene.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from datahygiene.errors import ConfigError, ListError

MAGIC = b"DHSTORE1"
NONCE_BYTES = 12
KEY_BYTES = 32
AAD_DOMAIN = b"datahygiene-store-v1\0"


def parse_key(text: str, what: str) -> bytes:
    """A 256-bit key written as 64 hex digits or as base64 (standard or URL-safe)."""
    raw = text.strip()
    key: bytes | None = None
    if len(raw) == 2 * KEY_BYTES:
        try:
            key = bytes.fromhex(raw)
        except ValueError:
            key = None
    if key is None:
        try:
            key = base64.b64decode(raw.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != KEY_BYTES:
        raise ConfigError(f"{what}: the store key must be 32 random bytes written as 64 hex digits "
                          "or base64 (make one with `datahygiene lists keygen PATH`)")
    return key


def new_key_text() -> str:
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def write_key_file(path: Path) -> None:
    """Create an owner-only key file; refuses to overwrite an existing one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path}: key file exists already; refusing to overwrite a key") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create key file ({exc.strerror})") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(new_key_text() + "\n")


def _aad(purpose: str, name: str, version: int) -> bytes:
    return AAD_DOMAIN + f"{purpose}\0{name}\0{version}".encode()


def seal(key: bytes, plaintext: bytes, purpose: str, name: str, version: int) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, plaintext, _aad(purpose, name, version))


def _split(blob: bytes, where: str) -> tuple[bytes, memoryview]:
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
        raise ListError(f"{where}: not a datahygiene store file (or truncated)")
    view = memoryview(blob)  # slices of a view: no copy of a large ciphertext
    return bytes(view[len(MAGIC):len(MAGIC) + NONCE_BYTES]), view[len(MAGIC) + NONCE_BYTES:]


def _cannot_decrypt(where: str) -> ListError:
    return ListError(f"{where}: cannot decrypt: wrong store key, or the file was altered or moved")


def unseal(key: bytes, blob: bytes, purpose: str, name: str, version: int, where: str) -> bytes:
    """Decrypt and authenticate; any failure is one line naming the file, never its content."""
    nonce, body = _split(blob, where)
    try:
        return AESGCM(key).decrypt(nonce, body, _aad(purpose, name, version))
    except InvalidTag:
        raise _cannot_decrypt(where) from None


def unseal_array(key: bytes, blob: bytes, purpose: str, name: str, version: int, where: str
                 ) -> np.ndarray:
    """:func:`unseal` into a writable uint8 array (decrypted in place where the
    installed ``cryptography`` can: no second copy of a large plaintext)."""
    nonce, body = _split(blob, where)
    aesgcm, aad = AESGCM(key), _aad(purpose, name, version)
    try:
        if hasattr(aesgcm, "decrypt_into"):  # in newer releases of cryptography
            out = np.empty(len(body) - 16, dtype=np.uint8)
            aesgcm.decrypt_into(nonce, body, aad, out.data)
            return out
        return np.frombuffer(aesgcm.decrypt(nonce, body, aad), dtype=np.uint8).copy()
    except InvalidTag:
        raise _cannot_decrypt(where) from None
