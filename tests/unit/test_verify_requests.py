"""`invoke verify --ref IMAGE_REF --image X --variant Y`: what the stage is asked to verify.

The reference named is judged by the expectations of the one image and variant given, and run
as it is (no build id: it is resolved once to an id when verified). A --ref that would need
several expectations, because --image or --variant is missing or names several, is refused
before any engine is touched, saying which option is missing and what was selected."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from mt5forge.config import Settings
from mt5forge.config import load as load_settings
from mt5forge.errors import ConfigError, VerificationError
from mt5forge.images import Target
from mt5forge.stages.verify import VerifyRequest, requests_for

REPO = Path(__file__).resolve().parents[2]
REF = "registry.example/team/bot:1.2"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO, env={})


def test_a_ref_with_one_image_and_variant_is_that_one_request(settings: Settings) -> None:
    assert requests_for(settings, ["bot"], ["slim"], REF) == [
        VerifyRequest(target=Target(image="bot", variant="slim"), reference=REF, image_id="")
    ]


def test_a_ref_of_an_image_with_one_variant_needs_no_variant(settings: Settings) -> None:
    (req,) = requests_for(settings, ["terminal-sim"], None, REF)
    assert (req.target, req.reference) == (Target(image="terminal-sim", variant="slim"), REF)


@pytest.mark.parametrize(
    ("images", "variants", "message"),
    [
        (None, ["slim"], "--image not given, so 3 were selected: terminal:slim, bot:slim, "
                         "terminal-sim:slim."),
        (["bot"], None, "--variant not given, so 2 were selected: bot:slim, bot:secure."),
        (None, None, "--image and --variant not given, so 5 were selected: "),
        (["bot", "terminal"], ["secure"], "; 2 were selected: bot:secure, terminal:secure."),
    ],
)  # fmt: skip
def test_a_ref_judged_by_several_expectations_is_refused(
    settings: Settings, images: Sequence[str] | None, variants: Sequence[str] | None, message: str
) -> None:
    with pytest.raises(VerificationError) as err:
        requests_for(settings, images, variants, REF)
    assert err.value.message.startswith(
        f"--ref {REF} is judged by the expectations of exactly one image and variant"
    )
    assert message in err.value.message
    assert err.value.hint == "Name one of each (e.g. --image bot --variant slim)."


def test_a_ref_with_an_unknown_image_is_refused_by_name(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="Unknown image 'bots'"):
        requests_for(settings, ["bots"], ["slim"], REF)


def test_without_a_ref_each_selected_image_is_its_project_tag(settings: Settings) -> None:
    prefix = settings.images.prefix
    assert requests_for(settings, ["bot"], None) == [
        VerifyRequest(target=Target(image="bot", variant=v), reference=f"{prefix}/bot:{v}")
        for v in ("slim", "secure")
    ]
