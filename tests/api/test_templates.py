"""Template CRUD over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from greenroom.api import create_app

from .support import make_settings, open_client


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.unit),
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
async def db_client(
    request: pytest.FixtureRequest, data_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    extra = {}
    if request.param == "postgresql":
        extra["database_url"] = request.getfixturevalue("postgres_url")
    app = create_app(make_settings(data_dir, **extra), warm_up=False)
    assert app.state.services.repo.engine.dialect.name == request.param
    async for client in open_client(app):
        yield client


async def test_template_crud(db_client: httpx.AsyncClient) -> None:
    c = db_client
    r = await c.post(
        "/v1/templates",
        json={
            "name": "Kiosk",
            "provider": "local",
            "voice": "en-us",
            "background": "color:#00B140",
            "keying": {"mode": "chroma", "key_color": "#00ff00", "clip_white": 0.5},
            "idle_timeout": 120,
        },
    )
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["id"].startswith("tpl_")
    assert t["background"] == "#00b140"  # normalised
    assert t["keying"] == {
        "mode": "chroma",
        "key_color": "#00ff00",
        "clip_black": 0.0,
        "clip_white": 0.5,
        "choke": 0.0,
        "despill": 1.0,
        "despill_luma": 1.0,
        "temporal": 0.5,
    }
    assert (t["provider"], t["avatar_id"], t["quality"], t["idle_timeout"]) == (
        "local",
        "default",
        "high",
        120,
    )

    assert (await c.get(f"/v1/templates/{t['id']}")).json() == t

    r = await c.patch(f"/v1/templates/{t['id']}", json={"background": "blur:25", "voice": None})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert (changed["background"], changed["voice"], changed["name"]) == ("blur:25", None, "Kiosk")
    assert changed["updated_at"] >= t["updated_at"]

    second = (await c.post("/v1/templates", json={"name": "Tutor", "background": "none"})).json()
    names = [x["name"] for x in (await c.get("/v1/templates")).json()["templates"]]
    assert names == ["Kiosk", "Tutor"]

    r = await c.post("/v1/templates", json={"name": "Tutor"})
    assert r.status_code == 409
    assert r.json()["error"] == {
        "code": "conflict",
        "message": "a template named 'Tutor' already exists; pick another name",
        "field": "name",
    }

    assert (await c.delete(f"/v1/templates/{second['id']}")).status_code == 204
    r = await c.get(f"/v1/templates/{second['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"template {second['id']!r} not found"
    assert [x["name"] for x in (await c.get("/v1/templates")).json()["templates"]] == ["Kiosk"]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "name", "name is required"),
        ({"name": "x", "provider": "acme"}, "provider", "unknown provider 'acme'"),
        ({"name": "x", "background": "#12345"}, "background", "is not a background"),
        ({"name": "x", "background": "/etc/passwd"}, "background", "file paths are not accepted"),
        (
            {"name": "x", "background": "image:/tmp/a.png"},
            "background",
            "file paths are not accepted",
        ),
        ({"name": "x", "background": "bg_" + "0" * 24}, "background", "no background"),
        ({"name": "x", "background": "blur:500"}, "background", "blur radius must be"),
        (
            {"name": "x", "provider_options": {"base_url": "http://elsewhere.invalid"}},
            "provider_options",
            "base_url cannot be set in a template",
        ),
        (
            {"name": "x", "provider_options": {"api_key": "k"}},
            "provider_options",
            "come from the environment",
        ),
        ({"name": "x", "keying": {"despill": 2}}, "keying.despill", "less than or equal to 1"),
        (
            {"name": "x", "keying": {"clip_black": 0.5, "clip_white": 0.52}},
            "keying.clip_white",
            "must exceed clip_black",
        ),
        (
            {"name": "x", "keying": {"key_color": "#808080"}},
            "keying.key_color",
            "is not a screen colour",
        ),
        ({"name": "x", "keying": {"mode": "magic"}}, "keying.mode", "'chroma' or 'segment'"),
        (
            {"name": "x", "keying": {"key_color": "green"}},
            "keying.key_color",
            "should match pattern",
        ),
        ({"name": "x", "idle_timeout": 0}, "idle_timeout", "greater than or equal to 1"),
        ({"name": "x", "quality": "ultra"}, "quality", "'low', 'medium' or 'high'"),
        ({"name": "x", "colour": "red"}, "colour", "colour is not a known field"),
        ({"name": "   "}, "name", "must not be blank"),
    ],
)
async def test_invalid_templates_name_the_field(
    client: httpx.AsyncClient, body: dict, field: str, message: str
) -> None:
    r = await client.post("/v1/templates", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_input"
    assert err["field"] == field
    assert message in err["message"]
    assert (await client.get("/v1/templates")).json()["templates"] == []


@pytest.mark.unit
def test_keying_defaults_are_the_keyers() -> None:
    """A template that says nothing about keying gets the settings the keyer is tuned and
    benchmarked with, not a second set of numbers."""
    import dataclasses

    from greenroom.api.schemas import KeyingSettings
    from greenroom.keying import ChromaParams

    api = KeyingSettings.model_validate({}).model_dump()
    keyer = {f.name: f.default for f in dataclasses.fields(ChromaParams)}
    shared = set(api) & set(keyer) - {"key_color"}  # "auto" here is None there
    assert {"clip_black", "clip_white", "choke", "despill", "despill_luma", "temporal"} <= shared
    assert {k: api[k] for k in shared} == {k: keyer[k] for k in shared}
