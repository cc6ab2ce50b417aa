"""Log redaction (mt5bridge.redact, used by the bridge and by the bot): properties over generated
secrets, encodings and key names, and crafted strings through the bot's real logging setup."""

from __future__ import annotations

import base64
import json
import logging
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from mt5bot import logs
from mt5bridge import jsonlog
from mt5bridge.redact import MASK, Redactor, escape, forms

PROPERTY = settings(max_examples=150, deadline=None, database=None)

# Secrets: any printable text, non-ASCII included, but not the mask's own character (a '*'
# next to the mask could spell a "survivor" out of masked text).
secret_chars = st.characters(exclude_categories=("Cs",), exclude_characters="*")
secrets = st.text(secret_chars, min_size=6, max_size=20).filter(
    lambda s: sum(not c.isspace() for c in s) >= 6
)
surroundings = st.text(
    st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="*"), max_size=20
)


def _b64(s: str) -> str:
    return base64.b64encode(s.encode("utf-8", "surrogatepass")).decode()


ENCODINGS: dict[str, Callable[[str], str]] = {
    "as given": lambda s: s,
    "repr": lambda s: repr(s)[1:-1],
    "repr in a tuple": lambda s: repr((s,)),
    "ascii": lambda s: ascii(s)[1:-1],
    "json": lambda s: json.dumps(s)[1:-1],
    "json utf-8": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "bytes repr": lambda s: repr(s.encode())[2:-1],
    "url-encoded": lambda s: urllib.parse.quote(s, safe=""),
    "url-encoded, lower hex": lambda s: urllib.parse.quote(s, safe="").lower(),
    "form-encoded": lambda s: urllib.parse.quote_plus(s),
    "base64": _b64,
    "base64 url-safe": lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    "basic auth": lambda s: "Basic " + _b64("user:" + s),
    "basic auth, other alignment": lambda s: _b64("bob-1:" + s),
    "hex": lambda s: s.encode().hex(),
    "HEX": lambda s: s.encode().hex().upper(),
    "upper-cased": str.upper,
    "lower-cased": str.lower,
    "spaces inside": lambda s: " ".join(s),
    "a space or two inside": lambda s: s[:3] + "  " + s[3:],
    "wrapped": lambda s: s[:4] + "\n" + s[4:],
}


@PROPERTY
@given(secrets, st.sampled_from(sorted(ENCODINGS)), surroundings, surroundings)
def test_no_form_of_a_known_secret_survives(
    secret: str, encoding: str, before: str, after: str
) -> None:
    shown = ENCODINGS[encoding](secret)
    out = Redactor(secrets=[secret])(f"{before} {shown} {after}")
    assert MASK in out
    assert shown not in out
    assert secret not in out


@PROPERTY
@given(st.integers(10**5, 10**12), st.sampled_from([",", "_", " ", ".", "'", "\u202f", ""]))
def test_account_numbers_keep_only_their_last_3_digits(login: int, sep: str) -> None:
    shown = f"{login:,}".replace(",", sep)
    out = Redactor(accounts=[login])(f"account {shown} logged in; raw {login}.")
    assert shown not in out and str(login) not in out
    assert out.count(str(login)[-3:]) == 2 and "*" * 3 in out


KEYS = [
    "password",
    "PASSWORD",
    "Password",
    "passwd",
    "pwd",
    "MT5_PASSWORD",
    "db.password",
    "client_secret",
    "passphrase",
    "GPG_PASSPHRASE",
    "token",
    "tokens",
    "access_token",
    "refresh-token",
    "api_key",
    "apiKey",
    "X-API-Key",
    "secret",
    "private_key",
]
values = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp"), exclude_characters="*"),
    min_size=4,
    max_size=24,
)
bare_values = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), exclude_characters="*&\"'\\"),
    min_size=4,
    max_size=24,
)
TEMPLATES: dict[str, Callable[[str, str], tuple[str, str]]] = {
    # template -> (log text, the value as it shows in that text)
    "KEY=value": lambda k, v: (f"{k}={v}", v),
    "key: value": lambda k, v: (f"{k}: {v}", v),
    "key = 'value'": lambda k, v: (f"{k} = {v!r}", repr(v)[1:-1]),
    "JSON": lambda k, v: (json.dumps({k: v, "user": "bob"}), json.dumps(v)[1:-1]),
    "JSON utf-8": lambda k, v: (json.dumps({k: v}, ensure_ascii=False), json.dumps(v)[1:-1]),
    "dict repr": lambda k, v: (repr({"user": "bob", k: v}), repr(v)[1:-1]),
    "JSON in a repr": lambda k, v: (repr(json.dumps({k: v})), repr(json.dumps(v))[2:-2]),
}


@PROPERTY
@given(st.sampled_from(KEYS), st.sampled_from(sorted(TEMPLATES)), values, bare_values, surroundings)
def test_values_under_secret_key_names_are_masked_whatever_they_are(
    key: str, template: str, value: str, bare: str, before: str
) -> None:
    chosen = bare if template in ("KEY=value", "key: value") else value
    text, shown = TEMPLATES[template](key, chosen)
    assume(shown.strip() and shown not in before and shown not in key)
    out = Redactor()(f"{before} {text}")
    assert shown not in out.replace(before, "", 1)


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("passphrase: correct horse battery staple", "horse battery staple"),
        ('{"password": 12345678, "user": "bob"}', "12345678"),
        ("Authorization: Bearer eyJhbGciOi.x", "eyJhbGciOi"),
        ("https://bob:hunter22@example.test/x", "hunter22"),
        ("curl -H 'X-Api-Key: k-123456' ...", "k-123456"),
        ("GET /feed?token=abc123&symbol=EURUSD", "abc123"),
        ('client_secret = "s p a c e d"', "s p a c e d"),
        ("PA\u017f\u017fWORD=hunter22", "hunter22"),  # a long s is an s to the patterns
    ],
)
def test_keyed_and_scheme_examples(text: str, leak: str) -> None:
    out = Redactor()(text)
    assert leak not in out and MASK in out


@pytest.mark.parametrize(
    "text", ["passed=3 bypass=4", "compass: north", "tokenizer ready", "Basic check ok"]
)
def test_ordinary_words_are_left_alone(text: str) -> None:
    assert Redactor()(text) == text


def test_forms_cover_escapes_and_encodings() -> None:
    found = forms("pä'ss\"wörd")
    for expected in (
        "p\\xe4\\'ss\"w\\xf6rd",
        "p\\u00e4'ss\\\"w\\u00f6rd",
        "p%C3%A4%27ss%22w%C3%B6rd",
    ):
        assert expected in found


def test_escape_keeps_a_peer_name_on_one_line() -> None:
    shown = escape("a\nb\r\u2028c\x1b[31m" + "z" * 500, limit=50)
    assert "\n" not in shown and "\r" not in shown and "\u2028" not in shown
    assert "\x1b" not in shown and shown.endswith("...[cut]") and len(shown) < 80


RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


def test_crafted_strings_through_the_bots_logging(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    password = "Zq9!sécret pw"
    login = 51234567
    logs.setup(logs.Redactor(secrets=[password], accounts=[login]), level="DEBUG", log_dir=tmp_path)
    log = logging.getLogger("bot.strategy")
    try:
        log.info("ascii %a, url %s", password, urllib.parse.quote(password))
        log.info("b64 %s hex %s", _b64(password), password.encode().hex())
        log.info("upper %s spaced %s", password.upper(), " ".join(password))
        log.info("account %s / %s / %s", f"{login:,}", f"{login:_}", f"{login:,}".replace(",", " "))
        log.info('env MT5_PASSWORD=%s and json {"api_key": "unknown-key-1"}', "other-pw-9")
        log.warning("symbol %s\n2030-01-01 00:00:00,000 CRITICAL forged: drained", "EURUSD")
        try:
            raise RuntimeError(f"login failed: password={password}\nsecond line")
        except RuntimeError:
            log.exception("while logging in with %r", password)
    finally:
        logging.getLogger().handlers.clear()
    _, err = capfd.readouterr()
    written = (tmp_path / "mt5bot.jsonl").read_text(encoding="utf-8")
    for text in (err, written):
        for leak in (
            password,
            ascii(password)[1:-1],
            urllib.parse.quote(password),
            _b64(password),
            password.encode().hex(),
            password.upper(),
            " ".join(password),
            str(login),
            f"{login:,}",
            f"{login:_}",
            "other-pw-9",
            "unknown-key-1",
        ):
            assert leak not in text, leak
        assert text.count("*****567") == 3
        for line in text.splitlines():
            if text is written:  # the file holds JSON lines, one record each
                assert jsonlog.parse(line) is not None, line
            else:
                assert RECORD.match(line) or line.startswith("    | "), line
