"""Throw-away signing keys for the tests, made at run time (GnuPG and cosign), never
committed; passphrases random per session and only ever in this process's environment."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mt5forge import signing
from mt5forge.stages.sign import SigningKeys
from mt5forge.tools import cosign


def make_keys(root: Path, tools: str, name: str) -> tuple[SigningKeys, str, str]:
    gpg_pass, cosign_pass = secrets.token_hex(16), secrets.token_hex(16)
    gkey = signing.make_gpg_key(
        root / f"{name}-gnupg", name=f"mt5forge {name}", passphrase=gpg_pass
    )
    ckey, cpub = cosign.generate_key_pair(
        tools, root / f"{name}-cosign" / "cosign", password=cosign_pass
    )
    keys = SigningKeys(
        gpg_home=gkey.home,
        gpg_fingerprint=gkey.fingerprint,
        gpg_public_key=gkey.public_key,
        cosign_key=ckey,
        cosign_public_key=cpub,
    )
    return keys, gpg_pass, cosign_pass


@contextmanager
def passphrases(gpg_pass: str, cosign_pass: str) -> Iterator[None]:
    """The passphrases where sign reads them, for as long as the block runs."""
    saved = {k: os.environ.get(k) for k in (signing.PASSPHRASE_ENV, cosign.PASSWORD_ENV)}
    os.environ[signing.PASSPHRASE_ENV] = gpg_pass
    os.environ[cosign.PASSWORD_ENV] = cosign_pass
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
