"""The README and the documentation site say what the code does, and only that."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from farl_bringup.ros_reference import ros_reference

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
DEVELOPMENT_TALK = re.compile(
    r"this stop|this session|lent (H100|machine|16-core)|the aim\b|aim's|a faster day|this machine|"
    r"\bissue \d+|shared/(papers|design)|\.\./shared",
    re.IGNORECASE,
)


def test_the_ros2_reference_page_is_the_one_the_nodes_declare() -> None:
    """docs/ros2-reference.md is generated from the node classes; a parameter, topic or launch argument
    added, removed or redocumented in the code without regenerating the page fails here."""
    page = (REPO / "docs" / "ros2-reference.md").read_text()
    assert page == ros_reference(), "regenerate it: python -m farl_bringup.ros_reference > docs/ros2-reference.md"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_pages_speak_of_the_software_not_of_its_development(page: Path) -> None:
    text = page.read_text()
    found = DEVELOPMENT_TALK.findall(text)
    assert not found, f"{page.name}: {found}"


def test_the_readme_is_a_front_page() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    text = "\n".join(lines)
    for needed in ("bash scripts/setup.sh", "bash scripts/test.sh", "@", "LICENSE", "docs/"):
        assert needed in text
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)", text):  # every local link leads somewhere
        assert (REPO / target).exists(), target


def test_the_readme_headline_table_is_the_one_the_results_give() -> None:
    from farl_bringup.headline import headline_table

    assert headline_table() in (REPO / "README.md").read_text(), "python -m farl_bringup.headline"
