"""Log redaction and one-line log records, shared by the bridge and the bot (mt5bot.logs).

A secret reaches a log in more shapes than the one it was given in: inside a tuple or a dict
it is `repr()`-escaped, JSON escapes it its own way, a URL carries it percent-encoded, an HTTP
header base64-encodes it, a hex dump shows its UTF-8 bytes, an error message upper-cases it, a
wrapped line puts spaces into it, and an account number is printed with thousands separators.
`Redactor` masks every one of those forms of every known secret (case-insensitively, with any
whitespace between its characters), and masks the value after a key that names a secret
(password, *_PASSWORD, client_secret, passphrase, token, API key, ...) in `KEY=value`,
`key: value` and JSON/`repr` forms, whatever that value is, so a secret the process was never
told about is masked too when it is logged under its name.

`escape` makes a peer-supplied string safe for one log line: control characters, line and
paragraph separators are escaped and the length is capped, so a client cannot forge a log
line by sending a name with a newline in it. `RedactingFormatter` applies both to every record
(message, arguments and exception alike), whatever logger wrote it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Final

MASK: Final = "***"

#: The one list of secret-named keys: the log redaction here, the alerts (mt5forge.alerts), the
#: verify gate (mt5forge.verify.patterns) and the scan's rules (scan-secrets.yaml, held to it by
#: tests/unit/test_secret_names.py) read it. A key is secret-named when one of these words ends
#: it (logs: MT5_PASSWORD=, db.password:, x-api-key:) or is one of its words (names of
#: environment variables, labels); ``_`` in a word stands for ``_``, ``-``, a space or nothing
#: (api_key: API_KEY, api-key, apikey), and a trailing s is allowed. A name that ends in
#: ``_FILE`` names the file that holds a secret (MT5_PASSWORD_FILE=/run/secrets/...): its value
#: is a path, no secret.
SECRET_KEY_WORDS: Final = (
    "password", "passwd", "passphrase", "pass", "pwd", "secret", "client_secret", "secret_key",
    "token", "access_token", "refresh_token", "auth_token", "id_token", "bearer_token",
    "api_key", "private_key", "tls_key", "authorization", "credential", "cookie", "investor",
)  # fmt: skip
#: Keys whose value is the trading account's number (MT5_LOGIN): not a credential, so a log
#: shows its last digits (mask_account) rather than nothing, but kept out of every image,
#: alert and report like one.
ACCOUNT_KEY_WORDS: Final = ("login",)
#: The project's own credential variables, each secret-named by the words above: the scan's
#: rules must catch each of them given a value in an image (tests/unit/test_secret_names.py).
CREDENTIAL_NAMES: Final = (
    "MT5_PASSWORD", "MT5_INVESTOR_PASSWORD", "MT5_VNC_PASSWORD", "VNC_PASSWORD",
    "MT5_BRIDGE_TLS_KEY",
)  # fmt: skip
ACCOUNT_NAMES: Final = ("MT5_LOGIN",)


def _alternation(words: Iterable[str]) -> str:
    forms = sorted({w.replace("_", r"[\s_-]?") for w in words}, key=len, reverse=True)
    return "(?:" + "|".join(forms) + ")s?"


_WORDS = _alternation(SECRET_KEY_WORDS)
_NAME = re.compile(rf"(?i)(?<![A-Za-z]){_alternation((*SECRET_KEY_WORDS, *ACCOUNT_KEY_WORDS))}"
                   r"(?![A-Za-z])")  # fmt: skip
_ACCOUNT_NAME = re.compile(rf"(?i)(?<![A-Za-z]){_alternation(ACCOUNT_KEY_WORDS)}(?![A-Za-z])")


def is_secret_name(name: str) -> bool:
    """Whether a variable or label named ``name`` holds a secret or the account number: one of
    its words (split at anything but a letter) is one of the list's. ``*_FILE``: a path."""
    return not name.upper().endswith("_FILE") and bool(_NAME.search(name))


def is_account_name(name: str) -> bool:
    """Whether ``name`` (secret-named) holds the account number rather than a credential."""
    return is_secret_name(name) and bool(_ACCOUNT_NAME.search(name))


# Key names in log text. A key may carry a prefix that ends in _ . or - (MT5_PASSWORD,
# db.password, x-api-key): the look-behind keeps "bypass" or "compass" from matching, and the
# separator that must follow keeps "passed=" from matching.
_KEY = rf"(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_.-])*{_WORDS}"
# The value: quoted (", ', or the \" \' of a repr inside a repr), or bare up to the next
# "key=" / "key:" or the end of the line. Bare values run past spaces on purpose: a password
# may contain them, and masking a bit more than the value is the safe side.
_BARE = r"""(?:(?!\s+\\?["']?[\w.-]+\\?["']?\s*[=:])[^\r\n&])+"""
_VALUE = r"""(?:\\?"(?:[^"\\\r\n]|\\.)*\\?"|\\?'(?:[^'\\\r\n]|\\.)*\\?'|""" + _BARE + ")"
_KEYED = re.compile(
    rf"""(?i)(?P<key>\\?["']?{_KEY}\\?["']?)(?P<sep>\s*[:=]\s*)(?P<value>{_VALUE})"""
)
# Credentials that come without a key=value shape.
_SCHEMES = re.compile(
    r"(?P<scheme>\b(?i:bearer)\s+|\b(?:Basic|Digest)\s+(?=[A-Za-z0-9._~+/=-]{12}))"
    r"[A-Za-z0-9._~+/=-]+"
)
_URL_USERINFO = re.compile(
    r"(?P<head>(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+(?P<at>@)"
)
# Words one of which a keyed secret or a scheme contains: a line with none of them (most lines)
# skips those patterns. Case-folded, as the patterns match case-insensitively.
_KEY_HINTS = ("pass", "pwd", "secret", "token", "api", "key", "auth", "credential", "cookie",
              "investor")  # fmt: skip
_SCHEME_HINTS = ("bearer", "basic", "digest")
# Between the digits of an account number: a thousands separator of any locale, or none.
_DIGIT_GAP = r"[\s,._'\u2019\u00a0\u202f\u2009]?"
_NOT_DIGITS = {ord(c): None for c in ",._'\u2019\u00a0\u202f\u2009"}
# What may sit between the characters of a secret: a wrapped line, spaces put in for show.
_GAP = r"\s*"


def mask_account(login: int) -> str:
    """The account number with all but its last 3 digits masked."""
    text = str(login)
    return "*" * max(0, len(text) - 3) + text[-3:]


def _variants(secret: str) -> set[str]:
    """The secret as typed and as it is after case and Unicode normalisation changes."""
    out = {secret, secret.upper(), secret.lower(), secret.casefold()}
    for form in ("NFC", "NFD", "NFKC", "NFKD"):
        out.add(unicodedata.normalize(form, secret))
    return out


def _base64_cores(data: bytes) -> Iterator[str]:
    """The base64 text of `data` wherever it starts in a longer byte string: for each of the
    3 alignments, the characters that depend on `data` alone (so `user:password` in a Basic
    header is caught by the password's own core)."""
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * shift + data).decode("ascii")
            start = -(-shift * 4 // 3)  # characters that also carry the preceding bytes
            end = (shift + len(data)) * 4 // 3  # characters wholly made of `data`
            core = text[start:end]
            if len(core) >= 4:
                yield core


def forms(secret: str) -> set[str]:
    """Every text a log may show for `secret` (see the module docstring)."""
    out: set[str] = set()
    for variant in _variants(secret):
        raw = variant.encode("utf-8", "surrogatepass")
        once = {
            variant,
            repr(variant)[1:-1],
            ascii(variant)[1:-1],
            json.dumps(variant)[1:-1],
            json.dumps(variant, ensure_ascii=False)[1:-1],
            repr(raw)[2:-1],
            urllib.parse.quote(variant, safe=""),
            urllib.parse.quote_plus(variant, safe=""),
            urllib.parse.quote(variant),
            raw.hex(),
            raw.hex(" "),
            raw.hex(":"),
            *_base64_cores(raw),
        }
        out |= once
        # Escaped twice (a repr of a message that holds a repr).
        out |= {repr(f)[1:-1] for f in once} | {json.dumps(f)[1:-1] for f in once}
    return {f for f in out if f.strip()}


def _squeezed(text: str) -> str:
    """`text` without whitespace, case-folded: what the secret patterns see of it (they allow
    whitespace between characters and ignore case), for a quick test before running them."""
    return "".join(text.split()).casefold()


def _spaced(text: str) -> str:
    """A pattern for `text` with any whitespace allowed between its characters."""
    chars = [c for c in text if not c.isspace()]
    return _GAP.join(re.escape(c) for c in chars)


class Redactor:
    """Masks known secrets in all their forms, account numbers, and keyed secret values."""

    def __init__(self, secrets: Iterable[str] = (), accounts: Iterable[int] = ()) -> None:
        texts = sorted({f for s in secrets if s for f in forms(s)}, key=len, reverse=True)
        patterns = [_spaced(t) for t in texts if _spaced(t)]
        self._secrets = re.compile("|".join(patterns), re.IGNORECASE) if patterns else None
        # What each pattern needs to find in a line; a line that holds none of these (most
        # lines) skips the patterns, which cost far more than these substring tests.
        self._needles = sorted({_squeezed(t) for t in texts} - {""}, key=len)
        self._accounts: list[tuple[str, re.Pattern[str], str]] = []
        for login in sorted({int(a) for a in accounts if a}, reverse=True):
            digits = _DIGIT_GAP.join(str(login))
            pattern = re.compile(rf"(?<![0-9]){digits}(?![0-9])")
            self._accounts.append((str(login), pattern, mask_account(login)))

    def __call__(self, text: str) -> str:
        if self._secrets is not None:
            squeezed = _squeezed(text)
            if any(needle in squeezed for needle in self._needles):
                text = self._secrets.sub(MASK, text)
        if self._accounts:
            digits = "".join(text.translate(_NOT_DIGITS).split())
            for login, pattern, masked in self._accounts:
                if login in digits:
                    text = pattern.sub(masked, text)
        lowered = text.casefold()  # as the patterns fold case (long s is an s to them)
        if any(hint in lowered for hint in _KEY_HINTS):
            text = _KEYED.sub(_mask_keyed, text)
        if any(hint in lowered for hint in _SCHEME_HINTS):
            text = _SCHEMES.sub(lambda m: f"{m['scheme']}{MASK}", text)
        if "://" in text:
            text = _URL_USERINFO.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)
        return text


def _mask_keyed(match: re.Match[str]) -> str:
    value = match["value"]
    # Keep the quotes, so the line still reads as what it was (JSON stays JSON-looking).
    quote = re.match(r"""\\?["']""", value)
    if quote and len(value) >= 2 * len(quote[0]) and value.endswith(quote[0]):
        return f"{match['key']}{match['sep']}{quote[0]}{MASK}{quote[0]}"
    return f"{match['key']}{match['sep']}{MASK}"


_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escape(text: object, limit: int = 200) -> str:
    """`text` (a peer-supplied name, say) made safe for one log line: control characters,
    line separators and bidi overrides escaped, at most `limit` characters kept."""
    shown = text if isinstance(text, str) else f"<{type(text).__name__}>"
    cut = len(shown) > limit
    shown = _UNSAFE.sub(lambda m: ascii(m[0])[1:-1], shown[:limit])
    return shown + ("...[cut]" if cut else "")


def one_line(text: str) -> str:
    """`text` with line breaks, other control characters and bidi overrides escaped."""
    return _UNSAFE.sub(lambda m: ascii(m[0])[1:-1], text)


class RedactingFormatter(logging.Formatter):
    """Formats a record, masks secrets in all of it, and keeps one record per line: the message
    is escaped (a peer cannot forge a record with a newline), and the lines of an exception's
    traceback are indented under it, so none of them can pass for a record of its own.

    Masking runs on the raw text first (a secret with a line break in it is still whole
    there), then once more on what is written."""

    def __init__(self, redactor: Redactor, fmt: str = "%(message)s") -> None:
        super().__init__(fmt)
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        head = one_line(self._redact(self.formatMessage(record)))
        tail: list[str] = []
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            tail.append(record.exc_text)
        if record.stack_info:
            tail.append(self.formatStack(record.stack_info))
        lines = self._redact("\n".join(tail)).splitlines() if tail else []
        body = "".join("\n    | " + one_line(line) for line in lines)
        return self._redact(head + body)


FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
