"""One list of secret-named keys (mt5bridge.redact), four readers that agree on it: the log
redaction, the alerts, the verify gate and the scan's Trivy rules (scan-secrets.yaml). Every
credential name of the list, given a value, is caught by each; given a variable reference
(``$VAR``) or as ``*_FILE`` (a path to the secret) it is caught by none."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from mt5bridge.redact import (
    ACCOUNT_KEY_WORDS,
    ACCOUNT_NAMES,
    CREDENTIAL_NAMES,
    SECRET_KEY_WORDS,
    Redactor,
    is_account_name,
    is_secret_name,
)

from mt5forge.alerts import container_secrets
from mt5forge.verify import patterns
from mt5forge.verify.patterns import Scanner

REPO = Path(__file__).resolve().parents[2]
PEM = "-----BEGIN PRIVATE KEY-----"
B64 = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"


def _value(name: str) -> str:
    """A value of the shape the name's secret has: a key given inline, an account number, or
    a password."""
    if name.endswith("KEY"):
        return B64
    if is_account_name(name):
        return "70412345"
    return "hunter2-Xq9"


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((REPO / "scan-secrets.yaml").read_text(encoding="utf-8"))
    rules = data["rules"]
    assert rules and all({"id", "regex", "keywords"} <= set(r) for r in rules)
    return list(rules)


def _trivy(line: str) -> list[str]:
    """The rules that fire on ``line`` as Trivy applies them: a keyword (case-insensitive)
    in the content first, then the regex (RE2; these use only syntax Python shares)."""
    return [
        r["id"]
        for r in _rules()
        if any(k.lower() in line.lower() for k in r["keywords"]) and re.search(r["regex"], line)
    ]


NAMES = (*CREDENTIAL_NAMES, *ACCOUNT_NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_the_scan_rules_catch_every_credential_name_given_a_value(name: str) -> None:
    value = _value(name)
    for line in (f"{name}={value}", f'export {name}="{value}"', f"ENV {name}={value}"):
        assert _trivy(line), f"no rule of scan-secrets.yaml catches {line!r}"
    assert _trivy(f"{name}={PEM}\n") or not name.endswith("KEY")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("ref", ["$MT5_VALUE", "${MT5_VALUE}", '"$MT5_VALUE"', "'${X:-y}'"])
def test_no_scan_rule_fires_on_a_variable_reference(name: str, ref: str) -> None:
    assert _trivy(f"{name}={ref}") == []
    assert _trivy(f"{name}_FILE=/run/secrets/{name.lower()}") == []


@pytest.mark.parametrize("name", NAMES)
def test_every_reader_takes_the_name_from_the_one_list(name: str) -> None:
    value = _value(name)
    assert is_secret_name(name) and not is_secret_name(f"{name}_FILE")
    assert is_account_name(name) == (name in ACCOUNT_NAMES)
    # verify: in the image config and in a file of a layer; the file's path is no secret.
    s = Scanner()
    assert next(h.rule for h in s.scan_pairs([(name, value)], "ENV")).endswith(name)
    assert [h.rule for h in s.scan(f"{name}={value}\n".encode(), "f")] != []
    assert list(s.scan_pairs([(f"{name}_FILE", "/run/secrets/x")], "ENV")) == []
    assert list(s.scan(f"{name}=$MT5_VALUE\n".encode(), "f")) == []
    # alerts: the value of a container's variable is redacted from what is sent.
    secrets, accounts = container_secrets({"Config": {"Env": [f"{name}={value}"]}}, _no_files)
    assert (value in secrets) or (int(value) in accounts)
    # logs: a credential under its name is masked whatever it is; an account number is masked
    # to its last digits when the redactor knows it (mask_account).
    if name in CREDENTIAL_NAMES:
        assert value not in Redactor([])(f"{name}={value} {name.lower()}: {value}")


def _no_files(path: Path) -> str | None:
    return None


def test_verify_scans_files_for_words_of_the_list_only() -> None:
    words = {*SECRET_KEY_WORDS, *ACCOUNT_KEY_WORDS}
    assert set(patterns.ANY_PREFIX_WORDS) <= words
    assert set(patterns.KEY_WORDS) == words
    s = Scanner()
    # The project prefix and whole words: MT5_BYPASS is no password; a key file's path is
    # no key; TOKEN= alone is too common in shipped code to look for.
    for line in ("MT5_BYPASS=abcdef", "MT5_BRIDGE_TLS_KEY=/certs/bridge.key", "TOKEN=abcdef"):
        assert list(s.scan(line.encode() + b"\n", "f")) == [], line
    assert list(s.scan(b"MT5_BOT_API_TOKEN=abcdef12\n", "f")) != []
