"""Verify runs a hardened image as the secure compose file runs its service, and judges the
build it was given by id: the compose file read (user, no swap, volumes, environment), its
hostile forms refused, the expectations that say whose user the processes must have, and the
requests the verify stage makes of build results (tag to judge, id to run, partners by id)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from mt5forge.config import load as load_settings
from mt5forge.errors import ConfigError
from mt5forge.images import Target
from mt5forge.stages.build import BuildResult
from mt5forge.stages.verify import requests_from_builds
from mt5forge.verify import checks, compose, expectations
from mt5forge.verify.compose import SECURE_FILE, expand, load_service, parse_service
from mt5forge.verify.live import partner_ref, run_args

REPO = Path(__file__).resolve().parents[2]


def test_the_bot_service_is_read_as_compose_runs_it() -> None:
    svc = load_service(REPO, "bot")
    assert svc.user == "1001:1000" and svc.user_ids() == (1001, 1000)
    assert svc.read_only and svc.memswap_limit == svc.mem_limit != ""
    assert dict(svc.volumes) == {"/config": "rw", "/logs": "rw"}
    assert dict(svc.tmpfs)["/tmp"].startswith("size=")
    env = dict(svc.environment)
    assert env["MT5BOT_STATE_DIR"] == "/tmp/mt5bot" and env["MT5BOT_LOG_DIR"] == "/logs"
    assert not [k for k in env if k.endswith("_FILE")], "secrets are verify's own"
    args = svc.engine_args()
    assert args["user"] == "1001:1000" and args["memswap_limit"] == args["mem_limit"]
    assert args["nano_cpus"] == int(svc.cpus * 1e9) and args["read_only"] is True


def test_bot_secure_must_run_as_the_compose_user_which_is_not_the_image_user() -> None:
    """The expectation is data; and it is not the trivial one: the compose user differs from
    the configured runtime user the image's USER is."""
    table = expectations.load(REPO / "build")
    assert table["bot:secure"].run_as == "compose"
    assert {e.run_as for k, e in table.items() if k != "bot:secure"} == {"image"}
    settings = load_settings(REPO, env={})
    ids = load_service(REPO, table["bot:secure"].compose_service).user_ids()
    assert ids is not None and ids[0] != settings.runtime.uid


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[bot.slim]\nrole = "bot"\nrun_as = "root"\n', "not one of image, compose"),
        ('[bot.slim]\nrole = "bot"\nrun_as = "compose"\n', "needs hardened = true"),
    ],
)
def test_run_as_is_checked(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        expectations.parse(text)


def _svc(body: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"services": {"bot": body}, "volumes": {"logs": None}, **top}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_svc({"user": "${MT5_BOT_UID}:1000"}), "has no default"),
        (_svc({"user": "bot:bot"}), "not UID or UID:GID"),
        (_svc({"user": "1001:1000; rm -rf /"}), "not UID or UID:GID"),
        (_svc({"volumes": [{"type": "volume", "target": "/logs"}]}), "only the short syntax"),
        (_svc({"pids_limit": "many"}), "not a number"),
        (_svc({"environment": "MT5BOT_STATE_DIR"}), "a mapping or a list"),
        ({"services": {}}, "no service 'bot'"),
        ("just text", "no service 'bot'"),
    ],
)
def test_hostile_compose_services_are_refused(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_service(data, "bot")


def test_defaults_expand_bind_mounts_and_secrets_are_left_out() -> None:
    assert expand("${A:-1001}:${B-1000}", "x") == "1001:1000"
    svc = parse_service(
        _svc({
            "user": "${U:-1001}",
            "volumes": ["logs:/logs:ro", "./export:/export", "/etc:/host-etc"],
            "environment": ["MT5_PASSWORD_FILE=/run/secrets/p", "A=${X:-b}"],
        }),
        "bot",
    )  # fmt: skip
    assert svc.user == "1001" and svc.user_ids() is None  # no gid: no user to check against
    assert svc.volumes == (("/logs", "ro"),) and svc.environment == (("A", "b"),)


def test_an_oversized_or_missing_compose_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read"):
        load_service(tmp_path, "bot")
    path = tmp_path / SECURE_FILE
    path.parent.mkdir()
    path.write_text("# " + "x" * 300_000)
    with pytest.raises(ConfigError, match="larger than"):
        load_service(tmp_path, "bot")
    path.write_text(yaml.safe_dump(_svc({"user": "1001:1000"})) + "\n  : [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_service(tmp_path, "bot")


def _result(image: str, variant: str, image_id: str) -> BuildResult:
    return BuildResult(
        target=Target(image=image, variant=variant), reference=f"p/{image}:{variant}",
        image_id=image_id, size=1, layers=1, seconds=0.0, steps=1, cached=1,
        record=Path("r"), log_file=Path("l"),
    )  # fmt: skip


def test_the_stage_runs_builds_by_id_and_judges_their_tags() -> None:
    built = [_result("bot", "secure", "sha256:" + "b" * 64), "not a build result"]
    (req,) = requests_from_builds(built)
    assert (req.reference, req.image_id) == ("p/bot:secure", "sha256:" + "b" * 64)


def test_partners_are_this_runs_builds_by_id_else_the_tag() -> None:
    ids = {"terminal-sim:slim": "sha256:" + "c" * 64}
    assert partner_ref(ids, "p", "terminal-sim:slim") == "sha256:" + "c" * 64
    assert partner_ref(ids, "p", "terminal:slim") == "p/terminal:slim"


@pytest.mark.parametrize(
    ("reference", "fails"),
    [("p/bot:latest", True), ("p/bot", True), ("p/bot:secure", False), ("p/bot@sha256:1", False)],
)
def test_the_moving_latest_tag_is_judged_on_the_tag(reference: str, fails: bool) -> None:
    """The metadata check reads only the config and the tag; the rest of the subject is
    unused by it (cast: there is no image to save or run here)."""
    subject = checks.Subject(
        expectation=expectations.parse(GOOD)["bot:slim"], reference=reference,
        attrs={"Config": {"Entrypoint": ["mt5bot"]}}, saved=cast(Any, None),
        running=cast(Any, None), scanner=cast(Any, None), uid=1000, gid=1000, root=REPO,
        client=None, helper_image="",
    )  # fmt: skip
    if fails:
        with pytest.raises(checks.Failed, match="moving 'latest' tag"):
            checks.metadata(subject)
    else:
        assert "tag " in checks.metadata(subject)


GOOD = '[bot.slim]\nrole = "bot"\nlisten = []\n'


def test_capabilities_and_security_options_come_from_the_compose_file(tmp_path: Path) -> None:
    """Verify adds no hardening of its own: it runs the service with what the file says, so a
    file that lost cap_drop or no-new-privileges is run without them (and fails hardening)."""
    table = expectations.load(REPO / "build")
    svc, args = run_args(table["bot:secure"], REPO)
    assert svc is not None and svc.cap_drop == ("ALL",)
    assert svc.security_opt == ("no-new-privileges:true",)
    assert args["cap_drop"] == ["ALL"] and args["security_opt"] == ["no-new-privileges:true"]
    assert args["read_only"] is True
    path = tmp_path / SECURE_FILE
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(_svc({"user": "1001:1000", "mem_limit": "64m"})))
    _, bare = run_args(table["bot:secure"], tmp_path)
    assert bare == {"user": "1001:1000", "mem_limit": "64m"}
    assert run_args(table["bot:slim"], tmp_path) == (None, {})
    with pytest.raises(ConfigError, match="cap_drop: expected a list"):
        parse_service(_svc({"cap_drop": "ALL"}), "bot")


@pytest.mark.parametrize(
    ("entry", "publishes"),
    [
        ("18812:18812", True), ("127.0.0.1:18812:18812", True), ("18812", True), (18812, True),
        ("0.0.0.0:28812:18812/tcp", True), ("18800-18820:18800-18820", True),
        ("${BRIDGE:-18812}:${BRIDGE:-18812}", True), ({"target": 18812, "published": 1}, True),
        ("18812:3000", False), ("127.0.0.1:${MT5_GUI_PORT:-3000}:3000", False),
        ({"target": 3000, "published": 18812}, False), ("[::1]:3000:3000", False),
        ("${UNSET}", False),
    ],
)  # fmt: skip
def test_which_compose_port_entries_publish_the_bridge_port(entry: object, publishes: bool) -> None:
    assert compose.publishes(entry, 18812) is publishes


def test_compose_files_publishing_the_bridge_port_are_named(tmp_path: Path) -> None:
    assert compose.compose_publishing(REPO, 18812) == []  # the project's publish the GUI only
    (tmp_path / "compose").mkdir()
    leak = {"services": {"terminal": {"ports": ["3000:3000", "18812:18812"]},
                         "bot": {"ports": [{"target": 18812}]}, "x": None}}  # fmt: skip
    (tmp_path / "compose" / "docker-compose.leak.yml").write_text(yaml.safe_dump(leak))
    (tmp_path / "compose" / "broken.yaml").write_text("services: [\n")
    assert compose.compose_publishing(tmp_path, 18812) == [
        "broken.yaml (not readable as YAML: ParserError)",
        "docker-compose.leak.yml services.bot.ports: {'target': 18812}",
        "docker-compose.leak.yml services.terminal.ports: '18812:18812'",
    ]
