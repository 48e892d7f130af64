import json

import pytest

from greenroom.backgrounds import BackgroundSpec
from greenroom.errors import InvalidInput

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#00B140", {"kind": "color", "color": "#00b140"}),
        ("color:#112233", {"kind": "color", "color": "#112233"}),
        ("blur", {"kind": "blur", "blur_radius": 15}),
        ("blur:25", {"kind": "blur", "blur_radius": 25}),
        ("none", {"kind": "none"}),
        ("image:/p.png", {"kind": "image", "path": "/p.png", "fit": "cover"}),
        ("image:/p.png#contain", {"kind": "image", "path": "/p.png", "fit": "contain"}),
        ("video:/p.mp4", {"kind": "video", "path": "/p.mp4"}),
        ("/p.jpg", {"kind": "image", "path": "/p.jpg"}),
        ("/loop.webm", {"kind": "video", "path": "/loop.webm"}),
    ],
)
def test_parse(text, expected):
    spec = BackgroundSpec.parse(text)
    for key, value in expected.items():
        assert getattr(spec, key) == value
    assert BackgroundSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("#12345", "not a colour"),
        ("blur:0", "1-100"),
        ("blur:abc", "1-100"),
        ("image:", "needs a file path"),
        ("/p.txt", "is not a background"),
        ("", "empty"),
    ],
)
def test_bad_specs_name_the_field_and_reason(text, reason):
    with pytest.raises(InvalidInput) as err:
        BackgroundSpec.parse(text)
    assert err.value.field == "background"
    assert reason in err.value.message


def test_to_attribute_is_compact_json_without_server_paths():
    attr = BackgroundSpec.parse("image:/srv/library/bg_1.png").to_attribute()
    assert " " not in attr
    assert json.loads(attr) == {"kind": "image", "name": "bg_1.png", "fit": "cover"}
    assert json.loads(BackgroundSpec.parse("#0044FF").to_attribute()) == {
        "kind": "color",
        "color": "#0044ff",
    }


def test_model_validation_and_frozen():
    spec = BackgroundSpec(kind="blur", blur_radius=30)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        spec.kind = "none"  # type: ignore[misc]
    with pytest.raises(ValueError, match="needs color"):
        BackgroundSpec(kind="color")
