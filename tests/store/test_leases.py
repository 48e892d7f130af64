"""Session leases in the store, on SQLite and PostgreSQL: claim on insert, renew in one
UPDATE, take over only what no replica holds (exactly one of several concurrent takers wins),
the migration of an existing database; and the per-host replica lock files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from greenroom.api.services.leases import ReplicaLocks
from greenroom.errors import ConfigError, NotFound
from greenroom.store import Repo, connect, migrate
from greenroom.store.db import alembic_config
from greenroom.store.models import SessionRow

pytestmark = pytest.mark.unit  # the PostgreSQL cases add the postgres marker

BASE = {
    "template_id": "tpl_x",
    "template_name": "kiosk",
    "provider": "local",
    "room": "r",
    "room_created": True,
    "viewer_identity": "v",
    "background": "#0044ff",
    "idle_timeout": 30,
}


def _url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'greenroom.db'}"
    return str(request.getfixturevalue("postgres_url"))


DATABASES = [
    pytest.param("sqlite"),
    pytest.param("postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _url(request, tmp_path)


@pytest.fixture
def repo(url: str) -> Iterator[Repo]:
    engine = connect(url)
    migrate(engine)
    yield Repo(engine)
    engine.dispose()


def now() -> datetime:
    return datetime.now(UTC)


def add(repo: Repo, sid: str, owner: str | None, lease: float | None, status: str = "started"):
    until = None if lease is None else now() + timedelta(seconds=lease)
    return repo.add_session(
        SessionRow(id=sid, status=status, owner=owner, lease_expires_at=until, **BASE)
    )


def test_claim_renew_and_release(repo: Repo) -> None:
    add(repo, "ses_a1", "a", 30)
    add(repo, "ses_a2", "a", 30)
    add(repo, "ses_b1", "b", 30)
    row = repo.get_session("ses_a1")
    assert row.owner == "a" and row.lease_expires_at is not None
    assert row.lease_expires_at.tzinfo is not None

    later = now() + timedelta(seconds=300)
    # one of the ids is b's: a's renewal leaves it alone and says so
    assert repo.renew_leases("a", {"ses_a1", "ses_a2", "ses_b1"}, later) == {"ses_a1", "ses_a2"}
    assert repo.get_session("ses_a2").lease_expires_at == later
    assert repo.get_session("ses_b1").lease_expires_at != later
    assert repo.renew_leases("a", set(), later) == set()

    assert repo.release_leases("a", {"ses_a1"}) == 1
    assert repo.get_session("ses_a1").lease_expires_at is None
    assert repo.release_leases("a") == 2  # all of a's open sessions
    assert repo.renew_leases("a", {"ses_a1"}, later) == {"ses_a1"}  # released rows stay a's
    assert repo.get_session("ses_b1").lease_expires_at is not None


def test_open_sessions_can_be_limited_to_unheld_rows(repo: Repo) -> None:
    add(repo, "ses_live", "a", 30)
    add(repo, "ses_expired", "a", -1)
    add(repo, "ses_released", "a", None)
    add(repo, "ses_legacy", None, None)
    add(repo, "ses_done", "a", -1, status="stopped")
    assert {r.id for r in repo.open_sessions()} == {
        "ses_live",
        "ses_expired",
        "ses_released",
        "ses_legacy",
    }
    unheld = {r.id for r in repo.open_sessions(expired_at=now())}
    assert unheld == {"ses_expired", "ses_released", "ses_legacy"}


def test_take_over_only_what_no_replica_holds(repo: Repo) -> None:
    add(repo, "ses_live", "a", 30)
    add(repo, "ses_expired", "a", -1)
    add(repo, "ses_legacy", None, None)
    add(repo, "ses_done", "a", None, status="stopped")
    t, until = now(), now() + timedelta(seconds=30)
    assert repo.take_over("ses_live", "b", t, until) is None
    assert repo.get_session("ses_live").owner == "a"
    taken = repo.take_over("ses_expired", "b", t, until)
    assert taken is not None and (taken.owner, taken.lease_expires_at) == ("b", until)
    assert repo.take_over("ses_expired", "c", t, until) is None  # now b holds it
    legacy = repo.take_over("ses_legacy", "b", t, until)
    assert legacy is not None and legacy.owner == "b"
    assert repo.take_over("ses_done", "b", t, until) is None  # closed rows only when asked
    done = repo.take_over("ses_done", "b", t, until, open_only=False)
    assert done is not None and done.owner == "b"


def test_a_stop_is_written_only_by_the_holder(repo: Repo) -> None:
    add(repo, "ses_mine", "a", 30)
    add(repo, "ses_taken", "b", 30)  # a's lease lapsed and b took it
    add(repo, "ses_legacy", None, None)
    assert repo.close_session("ses_mine", "a", status="stopped", stop_reason="stopped_by_user")
    assert not repo.close_session("ses_taken", "a", status="stopped", stop_reason="room_closed")
    assert repo.close_session("ses_legacy", "a", status="stopped", stop_reason="idle_timeout")
    assert [r.id for r in repo.open_sessions()] == ["ses_taken"]
    with pytest.raises(NotFound):
        repo.close_session("ses_zzz", "a", status="stopped")


def test_concurrent_takers_exactly_one_wins(repo: Repo) -> None:
    rows, takers = 12, 4
    for i in range(rows):
        add(repo, f"ses_{i}", "dead", -1)
    wins: dict[str, list[str]] = {f"ses_{i}": [] for i in range(rows)}
    errors: list[BaseException] = []
    barrier = threading.Barrier(takers)
    lock = threading.Lock()

    def take(me: str) -> None:
        try:
            barrier.wait(60)
            for i in range(rows):
                row = repo.take_over(f"ses_{i}", me, now(), now() + timedelta(seconds=60))
                if row is not None:
                    with lock:
                        wins[row.id].append(me)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(f"replica-{n}",)) for n in range(takers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors
    assert all(len(w) == 1 for w in wins.values()), wins
    for sid, (winner,) in wins.items():
        assert repo.get_session(sid).owner == winner


def test_migration_upgrades_an_existing_database(url: str) -> None:
    """A database at 0003 with an open session gains the lease columns; the old row has no
    owner, so any replica may take it over (as a restart closed it before)."""
    engine = connect(url)
    try:
        migrate(engine, "0003")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sessions (id, template_id, template_name, provider, status, "
                    "room, room_created, viewer_identity, background, idle_timeout, created_at) "
                    "VALUES ('ses_old', 'tpl_x', 'kiosk', 'local', 'started', 'r', true, 'v', "
                    "'#0044ff', 30, :t)"
                ),
                {"t": now().replace(tzinfo=None)},
            )
        migrate(engine)
        repo = Repo(engine)
        old = repo.get_session("ses_old")
        assert (old.owner, old.lease_expires_at) == (None, None)
        assert [r.id for r in repo.open_sessions(expired_at=now())] == ["ses_old"]
        assert repo.take_over("ses_old", "b", now(), now() + timedelta(seconds=30)) is not None

        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        migrate(engine)
        assert repo.get_session("ses_old").owner is None  # the columns came back empty
    finally:
        engine.dispose()


HOLDER = """
import sys, time
from pathlib import Path
from greenroom.api.services.leases import ReplicaLocks
ReplicaLocks(Path(sys.argv[1])).hold(sys.argv[2])
print("held", flush=True)
time.sleep(600)
"""


def test_replica_lock_tells_a_dead_process_on_this_host(tmp_path: Path) -> None:
    folder = tmp_path / "replicas"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), "api-7"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        locks = ReplicaLocks(folder)
        assert locks.ended() == set()  # alive
        with pytest.raises(ConfigError, match="'api-7' is in use by another process"):
            locks.hold("api-7")
        locks.hold("api-8")  # another name is fine
        assert locks.ended() == set()  # our own lock is not an ended replica
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert locks.ended() == {"api-7"}  # the kernel dropped its lock
    assert locks.ended() == set()  # told once: the file is gone
    locks.hold("api-7")  # a new process may now use the name
    locks.release("api-7")
    locks.release("api-8")
    assert list(folder.iterdir()) == []
