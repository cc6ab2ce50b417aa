"""What a secret looks like: by key name (``MT5_PASSWORD=...``, which Trivy's value-shape rules
miss), by value shape (private keys, tokens), by file name, and by the run's own canaries.

A hit names the rule and where, never the secret: the matched text is cut to a short prefix so a
report cannot become the leak it describes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Sequence

from mt5bridge.redact import ACCOUNT_KEY_WORDS, SECRET_KEY_WORDS, is_secret_name

#: Environment variables and labels: secret-named by the one list (mt5bridge.redact), the
#: credentials' and the account number's names alike; ``*_FILE`` names a file, not a secret.
KEY_WORDS = (*SECRET_KEY_WORDS, *ACCOUNT_KEY_WORDS)

#: File contents: the same words after a project prefix (MT5_, VNC_: MT5_PASSWORD=,
#: MT5_LOGIN=), and with any prefix only the words distinctive enough to look for in every
#: file of an image: TOKEN= or SECRET= alone occur in shipped code and tests.
ANY_PREFIX_WORDS = ("password", "passwd", "api_key", "secret_key", "access_token", "auth_token")
PROJECT_PREFIXES = ("MT5", "VNC", "X11VNC", "NOVNC")


def _upper(words: Sequence[str], *, joined: bool) -> bytes:
    """Upper-case forms of ``words``; ``joined``: ``API_KEY`` also as ``APIKEY``."""
    forms = {w.upper().replace("_", "_?" if joined else "_") for w in words}
    return b"(?:" + "|".join(sorted(forms, key=len, reverse=True)).encode() + b")S?"


#: A project-prefixed key is secret-named when a whole word of it is one of the list's
#: (MT5_VNC_PASSWORD, not MT5_BYPASS).
_KEYS = (
    rb"(?:(?:" + "|".join(PROJECT_PREFIXES).encode() + rb")_(?:[A-Z0-9]+_)*"
    + _upper(KEY_WORDS, joined=True)
    + rb"|[A-Z0-9_]*" + _upper(ANY_PREFIX_WORDS, joined=False) + rb")"
)  # fmt: skip
_VALUE = rb"[ \t]*=[ \t]*[\"']?([^\s\"'$`{}()<>]{4,})(?=[\"'\s]|$)"

#: ``KEY=value`` at the start of a line (env files, shell scripts, Dockerfile ENV): file contents.
_ASSIGN_LINE = re.compile(rb"(?m)^[ \t]*(?:export[ \t]+)?(" + _KEYS + rb")" + _VALUE)

#: ``KEY=value`` anywhere (history: ``ENV K=v``, ``|2 K=v /bin/sh -c ...`` for build args).
_ASSIGN_ANY = re.compile(rb"(?<![A-Za-z0-9_])(" + _KEYS + rb")" + _VALUE)

#: Values that are secrets whatever their key: the usual token and key shapes.
#: Token shapes must stand alone: inside a base64 blob (corepack.cjs embeds WebAssembly as
#: base64 in terminal:secure) "AKIA" and 16 capitals happen by chance.
#: Each rule with the literals one of which a match must contain: ``bytes in`` is a memchr
#: scan, far faster than the regex, and most files contain none of them.
VALUE_RULES: tuple[tuple[str, tuple[bytes, ...], re.Pattern[bytes]], ...] = (
    (
        "private key",
        (b"PRIVATE KEY-----",),
        re.compile(
            rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----\r?\n"
            rb"(?:[A-Za-z0-9+/=:, -]*\r?\n)?[A-Za-z0-9+/=\r\n]{64}"
        ),
    ),
    (
        "GitHub token",
        (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"),
        re.compile(rb"(?<![A-Za-z0-9+/])gh[pousr]_[A-Za-z0-9]{36,}"),
    ),
    (
        "AWS access key",
        (b"AKIA", b"ASIA"),
        re.compile(rb"(?<![A-Za-z0-9+/])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9+/=])"),
    ),
    ("Slack token", (b"xox",), re.compile(rb"xox[abprs]-[A-Za-z0-9-]{10,}")),
    ("PyPI token", (b"pypi-AgE",), re.compile(rb"pypi-AgE[A-Za-z0-9_-]{50,}")),
    (
        "JWT",
        (b"eyJ",),
        re.compile(rb"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    ),
)

#: A key-name match needs one of these (upper case: env files, shell, Dockerfiles).
_KEY_LITERALS = (b"PASSWORD", b"PASSWD", b"TOKEN", b"SECRET", b"API_KEY", b"MT5_", b"VNC_")

#: Values of a secret-named key that are placeholders, not secrets.
_PLACEHOLDERS = re.compile(rb"(?i)^(?:\*+|x+|none|null|changeme|example|placeholder|<[^>]*>)$")


def _not_a_secret(key: str, value: bytes) -> bool:
    """A placeholder, or the path of a key file (MT5_BRIDGE_TLS_KEY=/certs/bridge.key)."""
    return bool(_PLACEHOLDERS.match(value)) or (
        key.upper().endswith("KEY") and value.startswith(b"/")
    )


#: File names that hold credentials by convention.
SECRET_NAMES = re.compile(
    r"(?:^|/)(?:id_rsa|id_dsa|id_ecdsa|id_ed25519|\.netrc|\.git-credentials|\.pypirc|\.npmrc|"
    r"\.env|credentials(?:\.json)?|[^/]*\.(?:p12|pfx|keystore)|"
    r"(?:mt5|vnc)_(?:password|login|token)[^/]*)$"
)

_SHOW = 6


def redact(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return text[:_SHOW] + "..." if len(text) > _SHOW else "..."


@dataclasses.dataclass(frozen=True, kw_only=True)
class Hit:
    rule: str
    where: str
    sample: str
    """A redacted prefix of what matched."""

    def __str__(self) -> str:
        return f"{self.rule} in {self.where} ({self.sample})"


class Scanner:
    """Every rule, plus the literal canaries of this run, over bytes."""

    def __init__(self, canaries: Sequence[str] = ()) -> None:
        self.canaries = tuple(c.encode() for c in canaries if c)

    def scan(self, data: bytes, where: str, *, anywhere: bool = False) -> Iterator[Hit]:
        """Hits in ``data``: key-name rules at line starts (file contents), or ``anywhere``
        (history, labels)."""
        assign = _ASSIGN_ANY if anywhere else _ASSIGN_LINE
        for rule, literals, pattern in VALUE_RULES:
            if any(lit in data for lit in literals):
                m = pattern.search(data)
                if m:
                    yield Hit(rule=rule, where=where, sample=redact(m.group(0)))
        if any(lit in data for lit in _KEY_LITERALS):
            for m in assign.finditer(data):
                key = m.group(1).decode("ascii", "replace")
                if not _not_a_secret(key, m.group(2)):
                    yield Hit(rule=f"credential by key name {key}", where=where,
                              sample=redact(m[2]))  # fmt: skip
                    break
        for canary in self.canaries:
            if canary in data:
                yield Hit(rule="run-time canary", where=where, sample=redact(canary))

    def scan_pairs(self, pairs: Iterable[tuple[str, str]], where: str) -> Iterator[Hit]:
        """``KEY=value`` pairs (environment, labels): the key's name counts as much as the
        value's shape."""
        for key, value in pairs:
            if is_secret_name(key) and value and not _not_a_secret(key, value.encode()):
                yield Hit(rule=f"credential by key name {key}", where=where, sample=redact(value))
            yield from self.scan(f"{key}={value}".encode(), f"{where} {key}", anywhere=True)

    def name_hit(self, path: str, where: str) -> Hit | None:
        if SECRET_NAMES.search(path):
            return Hit(rule="credential file name", where=f"{where} {path}", sample="")
        return None
