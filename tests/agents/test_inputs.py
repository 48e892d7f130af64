"""``add_background``'s argument checks: each error names its field, before anything joins
or waits. (``mode="auto"``'s choice is the compositor's, tested in tests/keying/test_auto.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit import rtc

from greenroom.agents import add_background
from greenroom.errors import InvalidInput

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"background": "#0f0"}, "background", "#0f0"),
        ({"background": "#00ff00ff"}, "background", "colour"),
        ({"background": "office"}, "background", "not a background"),
        ({"background": "office.jpg"}, "background", "office.jpg"),
        ({"background": "video:/nowhere/loop.mp4"}, "background", "does not exist"),
        ({"background": {"kind": "color", "color": "blue"}}, "background", "#RRGGBB"),
        ({"background": 42}, "background", "spec string"),
        ({"mode": "fast"}, "mode", "auto, chroma, segment"),
        ({"avatar": 42}, "avatar", "int"),
        ({"avatar": " "}, "avatar", "empty"),
        ({"timeout": 0}, "timeout", "> 0"),
        ({"options": {"mode": "chroma"}}, "options", "CompositorOptions"),
    ],
)
async def test_bad_input_names_the_field(
    kwargs: dict[str, object], field: str, words: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # "office.jpg" is looked for in an empty folder
    args: dict[str, object] = {"avatar": "presenter", "background": "#0044ff", **kwargs}
    with pytest.raises(InvalidInput) as err:
        await add_background(rtc.Room(), **args)  # type: ignore[arg-type]
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")
    assert words in str(err.value)


async def test_the_room_must_be_connected() -> None:
    with pytest.raises(InvalidInput) as err:
        await add_background(rtc.Room(), avatar="presenter", background="#0044ff")
    assert err.value.field == "room" and "not connected" in str(err.value)
    with pytest.raises(InvalidInput) as err:
        await add_background("room-1", background="#0044ff")  # type: ignore[arg-type]
    assert err.value.field == "room"
