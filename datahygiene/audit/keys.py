"""The curator's evidence keys: an HMAC key for row-key commitments and an Ed25519
signing key for checkpoints and attestations (``datahygiene keys init``).

The HMAC key is what stops anyone from testing a guessed row key or URL against the
public log, so it is as secret as the restricted outputs: both private files are
created owner-only (0600) and refused when others can read them.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path

from datahygiene.audit.note import NoteError, Signer, Verifier
from datahygiene.errors import ConfigError

HMAC_FILE = "hmac.key"
SIGNING_FILE = "signing.key"
PUBLIC_FILE = "signing.pub"
HMAC_PREFIX = "datahygiene-hmac-sha256-v1:"


def default_name() -> str:
    """A key name (also the log's origin) unique to this key pair."""
    return f"datahygiene.invalid/log/{secrets.token_hex(6)}"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def init_keys(directory: str | os.PathLike[str], name: str | None = None) -> Verifier:
    """Create hmac.key, signing.key (0600) and signing.pub; never overwrite a key."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    existing = [f for f in (HMAC_FILE, SIGNING_FILE, PUBLIC_FILE) if (d / f).exists()]
    if existing:
        raise ConfigError(f"{d}: already holds {', '.join(existing)}; keys are never overwritten "
                          "(a new key would break the existing log's chain of checkpoints)")
    try:
        signer = Signer.generate(name or default_name())
    except NoteError as exc:
        raise ConfigError(f"--name: {exc}") from None
    _write_private(d / HMAC_FILE, HMAC_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    _write_private(d / SIGNING_FILE, signer.encode() + "\n")
    (d / PUBLIC_FILE).write_text(signer.verifier.encode() + "\n")
    return signer.verifier


def _read_private(path: Path, what: str) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found (create keys with `datahygiene keys init`)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({type(exc).__name__})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: {what} is readable by others; chmod 600 it")
    return text.strip()


def load_hmac_key(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    text = _read_private(p, "HMAC key")
    if not text.startswith(HMAC_PREFIX):
        raise ConfigError(f"{p}: not a datahygiene HMAC key file")
    try:
        key = base64.b64decode(text[len(HMAC_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{p}: HMAC key is not valid base64") from None
    if len(key) < 32:
        raise ConfigError(f"{p}: HMAC key is shorter than 32 bytes")
    return key


def load_signer(path: str | os.PathLike[str]) -> Signer:
    p = Path(path)
    try:
        return Signer.parse(_read_private(p, "signing key"))
    except NoteError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def load_verifier(path: str | os.PathLike[str]) -> Verifier:
    p = Path(path)
    try:
        return Verifier.parse(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: public key not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read public key ({type(exc).__name__})") from None
    except NoteError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def load_keydir(directory: str | os.PathLike[str]) -> tuple[bytes, Signer]:
    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"{d}: keys directory not found (create it with `datahygiene keys init --dir {d}`)")
    return load_hmac_key(d / HMAC_FILE), load_signer(d / SIGNING_FILE)
