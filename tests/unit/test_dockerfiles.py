"""Dockerfile text shared by several images lives once, in build/common/dockerfile/, and is
expanded when the context is staged: every include resolves, every fragment is used, and the
stages that must share cached layers render to the same instructions in every image."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mt5forge.context import INCLUDE, render_dockerfile
from mt5forge.errors import BuildError

REPO = Path(__file__).resolve().parents[2]
FRAGMENTS = REPO / "build" / "common" / "dockerfile"
IMAGES = ("bot", "terminal-sim", "terminal")


def rendered(image: str) -> str:
    return render_dockerfile(REPO / "build" / image / "Dockerfile", FRAGMENTS)


def stage(text: str, name: str) -> list[str]:
    """The instructions (comments and blank lines dropped) of stage ``name``."""
    m = re.search(rf"^FROM \S+ AS {re.escape(name)}\n(.*?)(?=^FROM |\Z)", text, re.M | re.S)
    assert m, f"no stage {name}"
    lines = [ln for ln in m.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    return [m.group(0).splitlines()[0], *lines]


@pytest.mark.parametrize("image", IMAGES)
def test_every_include_is_expanded(image: str) -> None:
    text = rendered(image)
    assert not INCLUDE.search(text)
    assert "FROM ${BASE} AS python-runtime" in text


def test_every_fragment_is_used() -> None:
    used = {m.group(1) for image in IMAGES for m in INCLUDE.finditer(
        (REPO / "build" / image / "Dockerfile").read_text())}  # fmt: skip
    assert used == {p.name for p in FRAGMENTS.iterdir()}


def test_the_python_runtime_stage_is_the_same_in_every_image() -> None:
    """Identical instructions on the same base: the engine's cache shares these layers."""
    stages = {image: stage(rendered(image), "python-runtime") for image in IMAGES}
    assert stages["bot"] == stages["terminal-sim"] == stages["terminal"]


def test_bot_variants_share_their_entry_lines() -> None:
    text = rendered("bot")
    slim, secure = stage(text, "slim"), stage(text, "secure")
    tail = ['CMD ["mt5bot"]', 'ENTRYPOINT ["/usr/bin/tini", "--"]']
    assert [ln for ln in slim if ln in tail] == [ln for ln in secure if ln in tail] != []


def test_an_unknown_fragment_is_an_error(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM x AS y\n# mt5forge:include nothing-here\n")
    with pytest.raises(BuildError, match="names no"):
        render_dockerfile(dockerfile, FRAGMENTS)
