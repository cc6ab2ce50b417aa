"""One list of secret-named keys (mt5bridge.redact), four readers that agree on it: the log
redaction, the alerts, the verify gate and the scan's Trivy rules (scan-secrets.yaml). Every
credential name of the list, given a value, is caught by each; given a variable reference
(``$VAR``) or as ``*_FILE`` (a path to the secret) it is caught by none.

The scan's side is the real Trivy binary (``trivy fs --scanners secret --secret-config``, the
rules as the scan gate gives them): every line below is written to a file of its own and
scanned once, so a keyword, regex or RE2 detail that Trivy reads differently fails here."""

from __future__ import annotations

from collections.abc import Mapping
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
from mt5forge.tools.run import call
from mt5forge.tools.trivy import parse_report
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


NAMES = (*CREDENTIAL_NAMES, *ACCOUNT_NAMES)
REFS = ("$MT5_VALUE", "${MT5_VALUE}", '"$MT5_VALUE"', "'${X:-y}'")


def _positives(name: str) -> list[str]:
    value = _value(name)
    return [f"{name}={value}", f'export {name}="{value}"', f"ENV {name}={value}"]


def _negatives(name: str) -> list[str]:
    return [*(f"{name}={ref}" for ref in REFS), f"{name}_FILE=/run/secrets/{name.lower()}"]


def _lines() -> list[str]:
    out: list[str] = []
    for name in NAMES:
        out += [*_positives(name), f"{name}={PEM}", *_negatives(name)]
    return list(dict.fromkeys(out))


@pytest.fixture(scope="module")
def trivy_hits(tmp_path_factory: pytest.TempPathFactory) -> Mapping[str, set[str]]:
    """Line -> the rule ids real Trivy reports on a file holding only that line (its own
    rules and scan-secrets.yaml's, as the scan gate runs it)."""
    root = tmp_path_factory.mktemp("secret-lines")
    cases = root / "cases"
    cases.mkdir()
    lines = _lines()
    for i, line in enumerate(lines):
        (cases / f"c{i:04d}.env").write_text(line + "\n", encoding="utf-8")
    proc = call(
        "trivy", "fs", "--quiet", "--format", "json", "--exit-code", "0",
        "--scanners", "secret", "--secret-config", str(REPO / "scan-secrets.yaml"),
        "--cache-dir", str(root / "cache"), "--offline-scan", str(cases),
        timeout=300,
    )  # fmt: skip
    hits: dict[str, set[str]] = {line: set() for line in lines}
    for f in parse_report(proc.stdout).findings:
        hits[lines[int(Path(f.target).stem[1:])]].add(f.id)
    return hits


@pytest.mark.parametrize("name", NAMES)
def test_the_scan_rules_catch_every_credential_name_given_a_value(
    name: str, trivy_hits: Mapping[str, set[str]]
) -> None:
    ours = {r["id"] for r in _rules()}
    for line in _positives(name):
        assert trivy_hits[line] & ours, f"no rule of scan-secrets.yaml catches {line!r}"
    if name.endswith("KEY"):
        assert "mt5-bridge-tls-key" in trivy_hits[f"{name}={PEM}"]


@pytest.mark.parametrize("name", NAMES)
def test_no_scan_rule_fires_on_a_variable_reference_or_a_file_path(
    name: str, trivy_hits: Mapping[str, set[str]]
) -> None:
    for line in _negatives(name):
        assert trivy_hits[line] == set(), line


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
