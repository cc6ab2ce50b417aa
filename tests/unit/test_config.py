from __future__ import annotations

from pathlib import Path

import pytest

from mt5forge import config
from mt5forge.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "mt5forge.toml").write_text(text, encoding="utf-8")
    return tmp_path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    s = config.load(tmp_path, env={})
    assert s.base.source == "debootstrap"
    assert s.base.suite == "trixie"
    assert s.runtime.uid == 1000
    assert s.images.variants == ("slim", "secure")
    assert s.run_dir == tmp_path.resolve() / "runs"


def test_the_repository_config_is_valid_and_matches_defaults(repo_root: Path) -> None:
    # mt5forge.toml documents every key; it must load and say what the defaults say.
    s = config.load(repo_root, env={})
    d = config.load(repo_root / "src", env={})
    assert s.base == d.base
    assert s.fetch.cache_dir == d.fetch.cache_dir


def test_precedence_defaults_file_env_options(tmp_path: Path) -> None:
    root = write(
        tmp_path, '[runtime]\nuid = 911\ngid = 911\n[registry]\naddress = "127.0.0.1:5001"\n'
    )
    env = {"MT5FORGE_RUNTIME_UID": "1234", "MT5FORGE_IMAGES_VARIANTS": "secure"}
    s = config.load(root, env=env, overrides={"registry": {"address": "127.0.0.1:5999"}})
    assert s.runtime.uid == 1234  # env beats file
    assert s.runtime.gid == 911  # file beats default
    assert s.images.variants == ("secure",)  # comma list from env
    assert s.registry.address == "127.0.0.1:5999"  # option beats file


def test_none_option_keeps_lower_layers(tmp_path: Path) -> None:
    root = write(tmp_path, '[base]\nsource = "registry"\n')
    s = config.load(root, env={}, overrides={"base": {"source": None}})
    assert s.base.source == "registry"


def test_mirror_alias(tmp_path: Path) -> None:
    s = config.load(tmp_path, env={"MT5FORGE_MIRROR": "http://127.0.0.1:8000/m"})
    assert s.fetch.mirror == "http://127.0.0.1:8000/m"


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    root = write(tmp_path, '[base]\nsourse = "registry"\n')
    with pytest.raises(ConfigError) as e:
        config.load(root, env={})
    assert "unknown key 'sourse' in [base]" in str(e.value)
    assert "Did you mean 'source'?" in str(e.value)
    assert e.value.exit_code == 2


def test_unknown_section_suggests(tmp_path: Path) -> None:
    root = write(tmp_path, "[regsitry]\naddress = '127.0.0.1:5000'\n")
    with pytest.raises(ConfigError, match="Did you mean 'registry'"):
        config.load(root, env={})


def test_unknown_environment_variable_suggests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MT5FORGE_BASE_SOURCE"):
        config.load(tmp_path, env={"MT5FORGE_BASE_SORCE": "registry"})


def test_wrong_types_are_named(tmp_path: Path) -> None:
    root = write(tmp_path, '[runtime]\nuid = "abc"\n')
    with pytest.raises(ConfigError, match=r"\[runtime\] uid: expected int"):
        config.load(root, env={})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="MT5FORGE_ENGINE_AUTOSTART"):
        config.load(empty, env={"MT5FORGE_ENGINE_AUTOSTART": "maybe"})


def test_bool_from_environment(tmp_path: Path) -> None:
    assert config.load(tmp_path, env={"MT5FORGE_ENGINE_AUTOSTART": "no"}).engine.autostart is False
    assert config.load(tmp_path, env={"MT5FORGE_ENGINE_AUTOSTART": "1"}).engine.autostart is True


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    root = write(tmp_path, "[base\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(root, env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[base]\nsource = "docker-hub"\n', "not a base image source"),
        ('[base]\nsource = "registry"\nimage = "debian:trixie-slim"\n', "not pinned by digest"),
        ("[runtime]\nuid = 0\n", "non-root"),
        ('[images]\nvariants = ["slim", "hardened"]\n', "unknown variant"),
        ('[fetch]\nmirror = "ftp://x"\n', "not an http"),
    ],
)
def test_values_that_cannot_work_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.load(write(tmp_path, text), env={})


def test_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path, env={"MT5FORGE_CONFIG": str(tmp_path / "nope.toml")})
