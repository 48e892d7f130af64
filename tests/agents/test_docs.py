"""The agents quickstart shows the example that ``test_example.py`` runs, word for word, and
the README links it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_shows_the_tested_example() -> None:
    doc = (ROOT / "docs" / "quickstart-agents.md").read_text()
    example = (ROOT / "examples" / "agents_background.py").read_text()
    assert f"```python\n{example}```\n" in doc


def test_readme_links_the_quickstart() -> None:
    assert "(docs/quickstart-agents.md)" in (ROOT / "README.md").read_text()


def test_public_api() -> None:
    import greenroom
    from greenroom import agents

    assert greenroom.add_background is agents.add_background
    assert greenroom.BackgroundHandle is agents.BackgroundHandle
    assert set(agents.__all__) <= set(dir(agents))
    for name in ("BackgroundHandle", "add_background"):
        assert name in greenroom.__all__
