"""The pure parts of the build stage: targets, artifact roles, build args, labels, the context."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
from pathlib import Path

import pytest

from mt5forge import config, context, images, labels
from mt5forge.errors import BuildError, ConfigError
from mt5forge.images import BaseInfo, Target
from mt5forge.labels import SourceInfo

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class FakeArtifact:
    name: str
    version: str
    filename: str
    sha256: str
    path: Path
    profile: str = "fixture"
    origin: str = "fixture"


def pe_bytes(machine: int) -> bytes:
    head = bytearray(512)
    head[:2] = b"MZ"
    struct.pack_into("<I", head, 0x3C, 0x80)
    head[0x80:0x84] = b"PE\0\0"
    struct.pack_into("<H", head, 0x84, machine)
    return bytes(head)


def make_artifacts(tmp_path: Path, mt5_machine: int = 0x8664) -> list[FakeArtifact]:
    files = {
        "wine-mono": ("9.4.0", "wine-mono-9.4.0-x86.msi", b"mono"),
        "wine-gecko-x86": ("2.47.4", "wine-gecko-2.47.4-x86.msi", b"gecko32"),
        "wine-gecko-x86_64": ("2.47.4", "wine-gecko-2.47.4-x86_64.msi", b"gecko64"),
        "python-windows": ("3.12.10", "python-3.12.10-amd64.exe", pe_bytes(0x8664)),
        "mt5setup": ("unversioned", "mt5setup.exe", pe_bytes(mt5_machine)),
    }
    out = []
    for name, (version, filename, data) in files.items():
        path = tmp_path / "cache" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        out.append(FakeArtifact(name, version, filename, sha, path))
    return out


@pytest.fixture
def settings(tmp_path: Path) -> config.Settings:
    return config.load(REPO, env={}, overrides={"paths": {"run_dir": str(tmp_path / "runs")}})


BASE = BaseInfo(name="mt5forge/base:trixie", digest="sha256:" + "a" * 64)
SOURCE = SourceInfo(
    url="https://example.invalid/mt5forge", revision="abc", created="2026-01-01T00:00:00Z"
)


def test_targets_terminal_sim_has_slim_only(settings: config.Settings) -> None:
    got = images.targets(settings)
    assert [str(t) for t in got] == [
        "terminal:slim",
        "terminal:secure",
        "bot:slim",
        "bot:secure",
        "terminal-sim:slim",
    ]


def test_targets_refuse_typos_and_empty_sets(settings: config.Settings) -> None:
    with pytest.raises(ConfigError, match="Unknown image"):
        images.targets(settings, ["termnal"])
    with pytest.raises(ConfigError, match="Unknown variant"):
        images.targets(settings, None, ["slimm"])
    with pytest.raises(ConfigError, match="Nothing to build"):
        images.targets(settings, ["terminal-sim"], ["secure"])


def test_terminal_roles_need_exactly_one_of_each(tmp_path: Path) -> None:
    artifacts = make_artifacts(tmp_path)
    roles = images.terminal_artifacts(artifacts)
    assert roles["WINE_GECKO_X86"].filename == "wine-gecko-2.47.4-x86.msi"
    assert roles["WINE_GECKO_X86_64"].filename == "wine-gecko-2.47.4-x86_64.msi"
    assert roles["WINDOWS_PYTHON"].filename == "python-3.12.10-amd64.exe"
    with pytest.raises(BuildError, match="Wine Mono"):
        images.terminal_artifacts([a for a in artifacts if a.name != "wine-mono"])


def test_pe_machine(tmp_path: Path) -> None:
    for machine, want in ((0x14C, "i386"), (0x8664, "amd64"), (0xAA64, "unknown")):
        p = tmp_path / f"{machine}.exe"
        p.write_bytes(pe_bytes(machine))
        assert images.pe_machine(p) == want
    text = tmp_path / "not.exe"
    text.write_text("hello")
    assert images.pe_machine(text) == "unknown"


def test_build_args_carry_artifacts_and_wine32_only_for_a_32_bit_installer(
    tmp_path: Path, settings: config.Settings
) -> None:
    roles = images.terminal_artifacts(make_artifacts(tmp_path))
    args = images.build_args(Target(image="terminal", variant="slim"), settings, BASE, roles)
    assert args["WINE_MONO_MSI"] == "wine-mono-9.4.0-x86.msi"
    assert args["WINE_MONO_SHA256"] == roles["WINE_MONO"].sha256
    assert args["WINDOWS_PYTHON_FILE"] == "python-3.12.10-amd64.exe"
    assert args["MT5SETUP_FILE"] == "mt5setup.exe"
    assert args["WINE_I386"] == "0"
    assert args["RUNTIME_UID"] == str(settings.runtime.uid)
    assert args["BASE"] == BASE.name
    assert args["APT_REFRESH"] == "0"

    roles32 = images.terminal_artifacts(make_artifacts(tmp_path / "x86", mt5_machine=0x14C))
    args32 = images.build_args(Target(image="terminal", variant="slim"), settings, BASE, roles32)
    assert args32["WINE_I386"] == "1"

    bot = images.build_args(Target(image="bot", variant="secure"), settings, BASE)
    assert not any(k.endswith("_SHA256") for k in bot)
    with pytest.raises(BuildError):
        images.build_args(Target(image="terminal", variant="slim"), settings, BASE)


def test_build_args_never_carry_the_ca_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    s = config.load(REPO, env={}, overrides={"build": {"ca_bundle": str(bundle)}})
    roles = images.terminal_artifacts(make_artifacts(tmp_path))
    args = images.build_args(Target(image="terminal", variant="slim"), s, BASE, roles)
    assert not any("MIIB" in v or "ca.pem" in v for v in args.values())


def test_labels_have_oci_keys_artifact_hashes_and_profile(tmp_path: Path) -> None:
    artifacts = make_artifacts(tmp_path)
    wheels = {"numpy": ("1.26.4", "b" * 64)}
    got = labels.labels(
        Target(image="terminal", variant="secure"),
        source=SOURCE,
        base=BASE,
        profile="fixture",
        artifacts=artifacts,
        wheels=wheels,
    )
    for key in ("source", "revision", "version", "created", "base.name", "base.digest"):
        assert got[f"org.opencontainers.image.{key}"], key
    assert got["org.opencontainers.image.base.digest"] == BASE.digest
    assert got["org.opencontainers.image.created"] == SOURCE.created
    assert got["org.mt5forge.profile"] == "fixture"
    assert got["org.mt5forge.variant"] == "secure"
    for a in artifacts:
        assert got[f"org.mt5forge.artifact.{labels.label_key(a.name)}.sha256"] == a.sha256
    assert got["org.mt5forge.wheel.numpy.sha256"] == "b" * 64
    assert got["org.mt5forge.artifact.wine-gecko-x86-64.file"] == "wine-gecko-2.47.4-x86_64.msi"
    # Every artifact says where its bytes came from; one label lists what is not upstream.
    assert got["org.mt5forge.artifact.wine-mono.origin"] == "fixture"
    assert "wine-mono=fixture" in got["org.mt5forge.not-upstream"].split(",")
    upstream = [dataclasses.replace(a, origin="upstream") for a in artifacts]
    clean = labels.labels(
        Target(image="terminal", variant="slim"), source=SOURCE, base=BASE,
        profile="upstream", artifacts=upstream, wheels=wheels,
    )  # fmt: skip
    assert "org.mt5forge.not-upstream" not in clean


def test_parse_pip_hashes_reads_the_manifest_of_windows_wheels() -> None:
    text = (REPO / "manifests" / "wheels-win_amd64.txt").read_text(encoding="utf-8")
    got = labels.parse_pip_hashes(text)
    assert got["numpy"][0] == "1.26.4"
    assert got["rpyc"][0] == "6.0.2"
    assert all(len(sha) == 64 for _, sha in got.values())
    sample = (
        "Foo_Bar==1.0 \\\n    --hash=sha256:" + "c" * 64 + "\n# baz==2 --hash=sha256:" + "d" * 64
    )
    assert labels.parse_pip_hashes(sample) == {"foo-bar": ("1.0", "c" * 64)}


def test_linux_and_windows_sides_pin_the_same_rpyc() -> None:
    linux = labels.parse_pip_hashes(
        (REPO / "build" / "common" / "requirements-linux.txt").read_text(encoding="utf-8")
    )
    windows = labels.parse_pip_hashes(
        (REPO / "manifests" / "wheels-win_amd64.txt").read_text(encoding="utf-8")
    )
    assert linux["rpyc"] == windows["rpyc"]


def test_stage_context_for_the_terminal(tmp_path: Path, settings: config.Settings) -> None:
    roles = images.terminal_artifacts(make_artifacts(tmp_path))
    dest = tmp_path / "ctx"
    context.stage_context(Target(image="terminal", variant="slim"), settings, dest, roles)
    assert (dest / "Dockerfile").is_file()
    assert (dest / "terminal" / "entrypoint").is_file()
    assert os.access(dest / "terminal" / "wine-build", os.X_OK)
    assert (dest / "terminal" / "requirements-windows.txt").is_file()
    assert (dest / "common" / "mt5-healthcheck").is_file()
    assert (dest / "src" / "bridge" / "pyproject.toml").is_file()
    assert not (dest / "src" / "bot").exists()
    assert not list(dest.rglob("__pycache__"))
    assert sorted(p.name for p in (dest / "artifacts").iterdir()) == sorted(
        a.filename for a in roles.values()
    )
    # No CA bundle configured: an empty file, so the download stages' COPY has a source.
    # The default `ca_bundle = "host"` brings the host's trust store, where it has one.
    host = context.ca_bundle(settings)
    assert (dest / "ca" / "build-ca.pem").read_bytes() == (host.read_bytes() if host else b"")


def test_stage_context_copies_the_ca_bundle_and_refuses_a_changed_artifact(
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("# a bundle\n")
    s = config.load(
        REPO,
        env={},
        overrides={"build": {"ca_bundle": str(bundle)}, "paths": {"run_dir": str(tmp_path)}},
    )
    dest = tmp_path / "ctx"
    context.stage_context(Target(image="bot", variant="slim"), s, dest)
    assert (dest / "ca" / "build-ca.pem").read_text() == "# a bundle\n"
    assert (dest / "src" / "bot" / "pyproject.toml").is_file()
    assert not (dest / "src" / "bot" / "Dockerfile").exists()

    artifacts = make_artifacts(tmp_path)
    artifacts[0].path.write_bytes(b"swapped")
    with pytest.raises(BuildError, match="no longer has the sha256"):
        context.stage_context(
            Target(image="terminal", variant="slim"),
            s,
            tmp_path / "ctx2",
            images.terminal_artifacts(artifacts),
        )


def test_ca_bundle_host_empty_and_path(tmp_path: Path) -> None:
    def resolve(value: str) -> Path | None:
        return context.ca_bundle(
            config.load(REPO, env={}, overrides={"build": {"ca_bundle": value}})
        )

    assert resolve("") is None
    host = resolve("host")
    assert host is None or str(host) in context.HOST_CA_BUNDLES
    pem = tmp_path / "corp.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    assert resolve(str(pem)) == pem


def test_stage_context_missing_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    s = config.load(REPO, env={}, overrides={"build": {"ca_bundle": str(tmp_path / "nope.pem")}})
    with pytest.raises(ConfigError, match="ca_bundle"):
        context.stage_context(Target(image="terminal-sim", variant="slim"), s, tmp_path / "c")


@pytest.mark.parametrize(
    ("remote", "label"),
    [
        (
            "https://gitlab-ci-token:glcbt-s3cret@gitlab.example/team/mt5forge.git",
            "https://gitlab.example/team/mt5forge.git",
        ),
        ("https://x-access-token:ghs_abc@github.com/o/r", "https://github.com/o/r"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),  # scp form: a user, no secret
        ("", ""),
    ],
)
def test_source_label_drops_credentials_from_the_clone_url(remote: str, label: str) -> None:
    assert labels.public_url(remote) == label


def test_source_info_labels_a_token_free_url(tmp_path: Path) -> None:
    from mt5forge.tools.run import call

    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "Dockerfile").write_text("FROM scratch\n")
    git = ("git", "-C", tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.invalid")
    for args in (
        ("init", "-q"),
        ("add", "build"),
        ("commit", "-q", "-m", "x"),
        ("remote", "add", "origin", "https://ci-token:s3cret@git.example/o/r.git"),
    ):
        call(*git, *args, timeout=30)
    info = labels.source_info(tmp_path)
    assert info.url == "https://git.example/o/r.git"
    assert len(info.revision) == 40 and "s3cret" not in repr(info)
