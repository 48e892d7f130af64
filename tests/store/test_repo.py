"""The store on both databases: migrations from empty, template CRUD, sessions, backgrounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from greenroom.errors import Conflict, NotFound
from greenroom.store import Repo, connect, migrate
from greenroom.store.db import alembic_config
from greenroom.store.models import BackgroundRow, SessionRow
from greenroom.store.repo import VENDOR_CLEARED


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.unit),
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repo:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'data' / 'greenroom.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = connect(url)
    migrate(engine)
    migrate(engine)  # running again on start is a no-op
    yield Repo(engine)
    engine.dispose()


TEMPLATE = {
    "name": "kiosk",
    "provider": "local",
    "avatar_id": "default",
    "voice": "en-us",
    "quality": "high",
    "background": "#0044ff",
    "keying": {"mode": "chroma", "key_color": "auto", "similarity": 0.4},
    "provider_options": {},
    "idle_timeout": 300,
}


def test_migrations_create_every_table(repo: Repo) -> None:
    tables = set(inspect(repo.engine).get_table_names())
    assert {"templates", "backgrounds", "sessions", "alembic_version"} <= tables


def test_template_crud(repo: Repo) -> None:
    t = repo.create_template(**TEMPLATE)
    assert t.id.startswith("tpl_")
    got = repo.get_template(t.id)
    assert got.name == "kiosk"
    assert got.keying == {"mode": "chroma", "key_color": "auto", "similarity": 0.4}
    assert got.created_at.tzinfo is not None

    with pytest.raises(Conflict, match="already exists"):
        repo.create_template(**TEMPLATE)

    other = repo.create_template(**{**TEMPLATE, "name": "tutor"})
    with pytest.raises(Conflict, match="'kiosk' already exists"):
        repo.update_template(other.id, name="kiosk")
    assert repo.get_template(other.id).name == "tutor"  # the failed rename changed nothing

    updated = repo.update_template(t.id, background="blur:20", idle_timeout=60)
    assert (updated.background, updated.idle_timeout) == ("blur:20", 60)
    assert updated.updated_at >= updated.created_at
    assert [x.name for x in repo.list_templates()] == ["kiosk", "tutor"]

    repo.delete_template(t.id)
    with pytest.raises(NotFound, match="template"):
        repo.get_template(t.id)
    with pytest.raises(NotFound):
        repo.delete_template(t.id)
    assert [x.name for x in repo.list_templates()] == ["tutor"]


def test_sessions_and_open_sessions(repo: Repo) -> None:
    base = {
        "template_id": "tpl_x",
        "template_name": "kiosk",
        "provider": "local",
        "room": "r",
        "room_created": True,
        "viewer_identity": "v",
        "background": "#0044ff",
        "idle_timeout": 30,
    }
    repo.add_session(SessionRow(id="ses_a", status="started", **base))
    repo.add_session(SessionRow(id="ses_b", status="stopped", stop_reason="idle_timeout", **base))
    assert [s.id for s in repo.open_sessions()] == ["ses_a"]
    repo.update_session("ses_a", status="stopped", stop_reason="service_restarted")
    assert repo.open_sessions() == []
    row = repo.get_session("ses_a")
    assert (row.status, row.stop_reason) == ("stopped", "service_restarted")
    assert {s.id for s in repo.list_sessions(status="stopped")} == {"ses_a", "ses_b"}
    with pytest.raises(NotFound, match="session 'ses_zzz' not found"):
        repo.get_session("ses_zzz")


def test_vendor_sessions_are_listed_until_cleared(repo: Repo) -> None:
    """A recorded vendor session is listed, whatever the row's status, until it is cleared
    (a stopped row may still name one its process could not stop)."""
    base = {
        "template_id": "tpl_x",
        "template_name": "kiosk",
        "provider": "liveavatar",
        "room": "r",
        "room_created": True,
        "viewer_identity": "v",
        "background": "#0044ff",
        "idle_timeout": 30,
    }
    repo.add_session(SessionRow(id="ses_a", status="starting", **base))
    repo.add_session(SessionRow(id="ses_b", status="stopped", **base))
    repo.add_session(SessionRow(id="ses_c", status="started", **base))
    assert repo.vendor_sessions() == []
    token = "t" * 600  # LiveAvatar's session tokens are long JWTs
    repo.update_session(
        "ses_a", vendor="liveavatar", vendor_session_id="la-1", vendor_stop_token=token
    )
    repo.update_session("ses_b", vendor="heygen", vendor_session_id="hg-1")
    rows = {r.id: r for r in repo.vendor_sessions()}
    assert set(rows) == {"ses_a", "ses_b"}
    assert (rows["ses_a"].vendor_session_id, rows["ses_a"].vendor_stop_token) == ("la-1", token)
    assert rows["ses_b"].vendor_stop_token is None
    repo.update_session("ses_a", **VENDOR_CLEARED)
    assert [r.id for r in repo.vendor_sessions()] == ["ses_b"]
    assert repo.get_session("ses_a").vendor is None


@pytest.mark.unit
def test_migrations_downgrade_and_upgrade_the_vendor_columns(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("sessions")}
    assert {"vendor", "vendor_session_id", "vendor_stop_token"} <= columns
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    columns = {c["name"] for c in inspect(engine).get_columns("sessions")}
    assert "vendor_session_id" not in columns and "max_duration" in columns
    migrate(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("sessions")}
    assert "vendor_stop_token" in columns
    engine.dispose()


def test_backgrounds(repo: Repo) -> None:
    row = BackgroundRow(
        id="bg_" + "0" * 24,
        name="beach.png",
        kind="image",
        format="png",
        content_type="image/png",
        size_bytes=10,
        width=4,
        height=4,
        duration_s=None,
        stored_name="bg_" + "0" * 24 + ".png",
        thumbnail_name="bg_" + "0" * 24 + ".thumb.jpg",
    )
    repo.add_background(row)
    repo.create_template(**{**TEMPLATE, "background": row.id})
    assert [t.name for t in repo.templates_using_background(row.id)] == ["kiosk"]
    assert repo.get_background(row.id).width == 4
    repo.delete_background(row.id)
    assert repo.list_backgrounds() == []


@pytest.mark.unit
def test_migration_gives_templates_with_the_old_clip_defaults_the_new_ones(tmp_path: Path) -> None:
    """Templates stored with the first keyer's defaults (0.06 / 0.6) get the current
    keyer's (0.0 / 0.85); a template whose user chose other clip points keeps them."""
    engine = connect(f"sqlite:///{tmp_path / 'k.db'}")
    migrate(engine, "0004")
    old = {"mode": "chroma", "clip_black": 0.06, "clip_white": 0.6, "temporal": 0.5}
    mine = {"mode": "chroma", "clip_black": 0.06, "clip_white": 0.7}
    with engine.begin() as conn:
        for tid, keying in (("tpl_old", old), ("tpl_mine", mine)):
            conn.execute(
                text(
                    "INSERT INTO templates (id, name, provider, avatar_id, quality, background,"
                    " keying, provider_options, idle_timeout, viewer_control, created_at,"
                    " updated_at) VALUES (:id, :id, 'local', 'default', 'high', '#0044ff',"
                    " :keying, '{}', 60, 1, '2026-12-06 00:00:00', '2026-12-06 00:00:00')"
                ),
                {"id": tid, "keying": json.dumps(keying)},
            )
    migrate(engine)
    repo = Repo(engine)
    assert repo.get_template("tpl_old").keying == {**old, "clip_black": 0.0, "clip_white": 0.85}
    assert repo.get_template("tpl_mine").keying == mine
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    assert Repo(engine).get_template("tpl_old").keying == old
    engine.dispose()
