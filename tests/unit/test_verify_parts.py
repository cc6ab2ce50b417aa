"""The verify gate's parts without an engine: expectations (schema, hostile input), secret
patterns (by key name, by shape, redaction), a layer tar read for real (whiteouts, deleted
files, setuid bits), /proc parsing, the JUnit XML."""

from __future__ import annotations

import io
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mt5forge.errors import ConfigError
from mt5forge.verify import expectations
from mt5forge.verify.junit import junit_xml
from mt5forge.verify.layers import Layer, SavedImage, read_layer
from mt5forge.verify.live import Canary, parse_facts, parse_tcp
from mt5forge.verify.patterns import Scanner
from mt5forge.verify.run import ImageVerdict, Outcome

REPO = Path(__file__).resolve().parents[2]
GOOD = '[bot.slim]\nrole = "bot"\nlisten = []\n'


def test_the_projects_expectations_cover_every_image_and_variant() -> None:
    table = expectations.load(REPO / "build")
    assert set(table) == {"terminal:slim", "terminal:secure", "bot:slim", "bot:secure",
                          "terminal-sim:slim"}  # fmt: skip
    assert table["bot:secure"].setuid_allowed == () and not table["bot:secure"].shell


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "colour = 1\n", "unknown key 'colour'"),
        ('[bot.slim]\nrole = "bot"\nexposed = [3000]\n', "expected a list of strings"),
        ('[bot.slim]\nrole = "printer"\n', "not one of terminal, bot"),
        ('[bot.slim]\nrole = "bot"\nexposed = ["3000"]\n', "not PORT/tcp"),
        ('[bot.slim]\nrole = "bot"\nlisten = ["18812"]\n', "not ADDRESS:PORT"),
        ('[bot.slim]\nrole = "bot"\nwritable = ["config"]\n', "not an absolute path"),
        ('[robot.slim]\nrole = "bot"\n', "not an image"),
        ('[bot.tiny]\nrole = "bot"\n', "not a variant"),
        ("[bot.slim]\n", "missing key(s): role"),
        ("[bot.slim\n", "not valid TOML"),
        ("# " + "x" * 300_000, "larger than"),
    ],
)
def test_expectations_refuse_what_they_do_not_know(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        expectations.parse(text)


def test_missing_expectations_name_the_table_to_add() -> None:
    with pytest.raises(ConfigError) as e:
        expectations.expectation_for(expectations.parse(GOOD), "bot", "secure")
    assert "[bot.secure]" in (e.value.hint or "")


def test_secrets_by_key_name_and_by_shape_and_never_shown() -> None:
    s = Scanner(["cnry-pw-abc"])
    hits = list(s.scan_pairs([("MT5_PASSWORD", "hunter2-long"), ("MT5_PASSWORD_FILE", "/run/x"),
                              ("PATH", "/usr/bin")], "ENV"))  # fmt: skip
    assert [h.rule for h in hits] == ["credential by key name MT5_PASSWORD"] * 2
    assert all("hunter2-long" not in str(h) for h in hits)
    token = b"ghp_" + b"a1B2" * 9
    assert [h.rule for h in s.scan(b"x = '" + token + b"'", "f")] == ["GitHub token"]
    assert [h.rule for h in s.scan(b"export VNC_PASSWORD=s3cr3t-pw\n", "f")] == [
        "credential by key name VNC_PASSWORD"
    ]
    assert [h.rule for h in s.scan(b"log: cnry-pw-abc", "f")] == ["run-time canary"]
    # Not secrets: a key name in code, a placeholder, a token shape inside base64.
    assert list(s.scan(b"CHALLENGE_PASSWORD = ObjectIdentifier('1.2')\n", "f")) == []
    assert list(s.scan(b"MT5_PASSWORD=changeme\n", "f")) == []
    assert list(s.scan(b"QUFBAKIAMQO0HYACMBQQFGDQgaCy", "f")) == []
    assert list(s.scan(b'_SK_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"', "f")) == []


def _tar(entries: list[tuple[str, bytes | None, int]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_layers_applied_in_order_keep_what_a_later_layer_deleted() -> None:
    s = Scanner()
    token = b"ghp_" + b"Zx9Q" * 9
    first = read_layer("a" * 64, _tar([("opt/", None, 0o755), ("opt/api-token", token, 0o644),
                                       ("usr/bin/su", b"\x7fELF...", 0o4755),
                                       ("etc/app/", None, 0o755),
                                       ("etc/app/x.conf", b"ok", 0o644)]), s)  # fmt: skip
    second = read_layer("b" * 64, _tar([("opt/.wh.api-token", b"", 0o644),
                                        ("etc/app/.wh..wh..opq", b"", 0o644),
                                        ("etc/app/y.conf", b"ok", 0o644)]), s)  # fmt: skip
    image = SavedImage(layers=(first, second), config={})
    fs = image.final()
    assert "/opt/api-token" not in fs and "/etc/app/x.conf" not in fs and "/etc/app/y.conf" in fs
    assert fs["/usr/bin/su"].mode == 0o4755
    hits = list(image.hits())
    assert [(i, h.rule) for i, h in hits] == [(0, "GitHub token")]
    assert image.deleted_later(0, "/opt/api-token")
    assert first.binaries == 1  # ELF: named, not scanned


def test_proc_parsing() -> None:
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode\n"
        "   0: 0100007F:4974 00000000:0000 0A 00000000:00000000 00:00000000 00000000 1000 0 111 1\n"
        "   1: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000 1000 0 222 1\n"
        "   2: 0100007F:4974 0100007F:9999 01 00000000:00000000 00:00000000 00000000 1000 0 333 1\n"
    )
    assert [str(x) for x in parse_tcp(tcp)] == ["127.0.0.1:18804", "0.0.0.0:3000"]
    procs, listeners = parse_facts(
        "@proc 7\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n"
        "CapEff:\t0000000000000000\nNoNewPrivs:\t1\ncmd mt5bot --x \nsock socket:[111]\n"
        "@proc 9\n@tcp\n" + tcp
    )
    assert len(procs) == 1 and procs[0].uids == (1000,) * 4 and procs[0].sockets == {111}
    assert procs[0].no_new_privs and procs[0].cap_eff == 0 and len(listeners) == 2


def test_canaries_are_scrubbed_and_junit_names_every_check() -> None:
    c = Canary.make()
    assert c.password not in c.scrub(f"debug: password={c.password}")
    verdict = ImageVerdict(
        image="bot", variant="slim", reference="mt5forge/bot:slim", image_id="sha256:" + "0" * 64,
        terminal="simulator", seconds=1.0, read_seconds=0.5,
        outcomes=(Outcome(name="user.config", status="passed", detail="User 1000:1000",
                          seconds=0.1),
                  Outcome(name="files.setuid", status="failed", detail="x <bad>", seconds=0.1),
                  Outcome(name="hardening", status="not applicable", detail="slim", seconds=0)),
    )  # fmt: skip
    root = ET.fromstring(junit_xml([verdict]))  # noqa: S314  # our own output
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("skipped") == "1"
    assert [c.get("name") for c in suite.iter("testcase")] == [
        "user.config",
        "files.setuid",
        "hardening",
    ]
    assert isinstance(Layer, type)
