"""The database goes away mid-request: SQLite locked by another connection, PostgreSQL
restarted (a dedicated throwaway server, so other tests never see it).

"Mid-request" is made exact: a watcher thread waits until the session row exists with
status ``starting`` (the avatar and compositor are being launched) and only then takes the
database away, so the start request meets the fault when it records ``started``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from greenroom.livekit_server import LiveKitServer

from .conftest import Service, fault_seconds, open_service, participants, record, wait_until

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

SQLITE_BUSY_TIMEOUT = 15.0  # greenroom.store.db.connect: how long a writer waits for a lock
RED = "#dc1e28"


def watch_for_starting(
    is_starting: Callable[[], bool], act: Callable[[], None], stop: threading.Event
) -> threading.Thread:
    """A thread that runs ``act`` as soon as ``is_starting()`` is true."""

    def run() -> None:
        while not stop.is_set():
            if is_starting():
                act()
                return
            time.sleep(0.005)

    t = threading.Thread(target=run, name="fault-watcher", daemon=True)
    t.start()
    return t


def assert_database_unavailable(r: Any) -> None:
    """What a caller should be told when the database fails under a request: it is
    unavailable, try again later; never the SQL."""
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert "[SQL" not in err["message"] and "sqlalche" not in err["message"], err
    assert err["code"] == "database_unavailable", err
    assert r.headers.get("retry-after"), r.headers


# SQLite -------------------------------------------------------------------------------------
class SqliteLock:
    """Another connection holding the database's write lock (``BEGIN EXCLUSIVE``)."""

    def __init__(self, path: Path):
        self.path = path
        self.held = threading.Event()
        self.released_at = 0.0
        self.status_when_locked: str | None = None

    def hold(self, seconds: float) -> None:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            row = conn.execute(
                "SELECT status FROM sessions ORDER BY created_at DESC LIMIT 1"
            ).fetchone()
            self.status_when_locked = row[0] if row else None
            self.held.set()
            time.sleep(seconds)
            conn.execute("ROLLBACK")
            self.released_at = time.monotonic()
        finally:
            conn.close()

    def starting(self) -> bool:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            row = conn.execute("SELECT count(*) FROM sessions WHERE status = 'starting'").fetchone()
            return bool(row[0])
        finally:
            conn.close()


async def test_sqlite_lock_shorter_than_busy_timeout_only_delays(
    service: Service, data_dir: Path
) -> None:
    """A lock held for a while: writes wait for it and then succeed; reads and the picture go
    on meanwhile."""
    svc = service
    held_for = min(fault_seconds(3.0), SQLITE_BUSY_TIMEOUT - 5)
    a = await svc.start()
    sid = a["session_id"]
    lock = SqliteLock(data_dir / "greenroom.db")
    holder = threading.Thread(target=lock.hold, args=(held_for,), daemon=True)
    holder.start()
    assert await asyncio.to_thread(lock.held.wait, 30)
    t0 = time.monotonic()
    frames_before = await svc.frames_out(sid)

    async def put() -> tuple[Any, float]:
        r = await svc.client.put(
            f"/v2/streaming/sessions/{sid}/background", json={"background": RED, "transition": 0}
        )
        return r, time.monotonic()

    pending = asyncio.create_task(put())
    health = await svc.client.get("/healthz")
    health_at = time.monotonic()
    read = await svc.session(sid)  # reads are not blocked by a writer's lock (WAL)

    async def advanced() -> bool:
        return await svc.frames_out(sid) > frames_before

    await wait_until(advanced, "composited frames while the lock is held", timeout=60)
    frames_at = time.monotonic()
    r, put_at = await pending
    await asyncio.to_thread(holder.join, 30)

    assert health.status_code == 200, health.text
    assert health_at < lock.released_at, "the health check waited for the lock"
    assert read["status"] == "started"
    assert frames_at < lock.released_at, "the picture stopped while the lock was held"
    assert r.status_code == 200, r.text
    assert r.json()["background"] == RED
    assert put_at >= lock.released_at  # it waited for the lock, then wrote
    record(
        f"SQLite locked {held_for:.0f} s", "PUT answered after release", put_at - lock.released_at
    )
    record(f"SQLite locked {held_for:.0f} s", "PUT total", put_at - t0)
    assert (await svc.session(sid))["background"] == RED


async def test_sqlite_locked_past_busy_timeout_during_start(
    service: Service, data_dir: Path
) -> None:
    """The lock outlasts the store's busy timeout just when a start records ``started``: the
    start is refused with a clear error, nothing it launched keeps running, and the row tells
    the truth once the lock is gone."""
    svc = service
    await svc.template()
    lock = SqliteLock(data_dir / "greenroom.db")
    held_for = SQLITE_BUSY_TIMEOUT + 5
    stop = threading.Event()
    watcher = watch_for_starting(lock.starting, lambda: lock.hold(held_for), stop)
    try:
        t0 = time.monotonic()
        r = await svc.client.post(
            "/v2/streaming/sessions", json={"template_id": svc.template_id}, timeout=300
        )
        answered = time.monotonic()
    finally:
        stop.set()
        await asyncio.to_thread(watcher.join, 120)
    assert lock.status_when_locked == "starting", "the lock came too late to test anything"
    print(f"\nstart during the lock -> {r.status_code} {r.text[:300]}")
    record("SQLite locked during start", "start answered after", answered - t0)

    # nothing left running: no live session, no participant, no open row
    assert not svc.app.state.services.sessions.live
    (row,) = (await svc.client.get("/v2/streaming/sessions")).json()["sessions"]
    assert not await participants(svc.livekit, row["room"])

    async def row_settled() -> dict | None:
        s = await svc.session(row["session_id"])
        return s if s["status"] not in ("starting", "started") else None

    s = await wait_until(row_settled, "the failed start's row to say so", timeout=60)
    assert (s["status"], s["stop_reason"]) == ("failed", "start_failed"), s
    assert "database" in (s["error"] or "").lower() or "locked" in (s["error"] or ""), s

    t1 = time.monotonic()
    await svc.start()
    record("SQLite locked during start", "next session to first frame", time.monotonic() - t1)

    assert_database_unavailable(r)


# PostgreSQL ---------------------------------------------------------------------------------
class OwnPostgres:
    """A PostgreSQL server for one test, which it may crash and start again."""

    def __init__(self) -> None:
        import os
        import pwd
        import tempfile

        from fixtures.postgres import PG_BIN, _free_port, _runner

        if not (PG_BIN / "initdb").exists():
            pytest.skip(f"PostgreSQL 15 binaries not found in {PG_BIN}")
        self.prefix, self.user = _runner()
        self.pg_ctl = str(PG_BIN / "pg_ctl")
        self.base = Path(tempfile.mkdtemp(prefix="greenroom-pgfault-"))
        if self.prefix:
            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self.data, self.log = self.base / "data", self.base / "server.log"
        self.port = _free_port()
        subprocess.run(
            [
                *self.prefix,
                *(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust"),
                *("-U", self.user, "-E", "UTF8", "--no-sync"),
            ],
            check=True,
            capture_output=True,
        )
        self.start()
        self._psql("CREATE DATABASE greenroom")
        self.url = f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/greenroom"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.base} -F -c fsync=off"
        self._ctl("-l", str(self.log), "-o", opts, "-w", "-t", "30", "start")

    def crash(self) -> None:
        self._ctl("-m", "immediate", "-w", "stop")

    def _psql(self, sql: str, db: str = "postgres") -> Any:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname=db, autocommit=True
        ) as conn:
            return (
                conn.execute(sql).fetchall()
                if sql.lstrip().upper().startswith("SELECT")
                else conn.execute(sql)
            )

    def starting(self) -> bool:
        try:
            rows = self._psql(
                "SELECT count(*) FROM sessions WHERE status = 'starting'", "greenroom"
            )
        except Exception:
            return False
        return bool(rows[0][0])

    def close(self) -> None:
        import shutil

        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    yield pg
    pg.close()


@pytest.fixture
async def pg_service(
    data_dir: Path, livekit: LiveKitServer, own_postgres: OwnPostgres
) -> AsyncIterator[Service]:
    async for s in open_service(data_dir, livekit, database_url=own_postgres.url):
        yield s


@pytest.mark.postgres
async def test_postgres_restarted(pg_service: Service, own_postgres: OwnPostgres) -> None:
    """PostgreSQL crashes and comes back: first while a session runs (requests meanwhile get
    a clear 503, the session and its picture go on), then during a start."""
    svc, pg = pg_service, own_postgres
    down_for = fault_seconds(3.0)
    a = await svc.start()
    sid = a["session_id"]

    frames_before = await svc.frames_out(sid)
    await asyncio.to_thread(pg.crash)
    t_down = time.monotonic()
    health = await svc.client.get("/healthz")
    assert health.status_code == 503 and health.json()["error"]["code"] == "unhealthy"
    during = await svc.client.put(
        f"/v2/streaming/sessions/{sid}/background", json={"background": RED, "transition": 0}
    )
    print(f"\nPUT while PostgreSQL is down -> {during.status_code} {during.text[:300]}")
    await asyncio.sleep(max(0.0, t_down + down_for - time.monotonic()))
    await asyncio.to_thread(pg.start)
    t_up = time.monotonic()

    async def healthy() -> bool:
        return (await svc.client.get("/healthz")).status_code == 200

    await wait_until(healthy, "the service to see PostgreSQL again", timeout=60)
    record(f"PostgreSQL down {down_for:.0f} s", "healthz ok after restart", time.monotonic() - t_up)
    s = await svc.session(sid)
    assert s["status"] == "started", s
    assert s["metrics"]["frames_out"] > frames_before
    r = await svc.client.put(
        f"/v2/streaming/sessions/{sid}/background", json={"background": "#00ff00", "transition": 0}
    )
    assert r.status_code == 200, r.text
    assert (await svc.session(sid))["background"] == "#00ff00"
    r = await svc.client.delete(f"/v2/streaming/sessions/{sid}")
    assert r.status_code == 200, r.text

    # during a start: PostgreSQL crashes once the row says "starting", and stays down until
    # the start has answered
    stop = threading.Event()
    crashed = threading.Event()

    def crash() -> None:
        pg.crash()
        crashed.set()

    watcher = watch_for_starting(pg.starting, crash, stop)
    try:
        t0 = time.monotonic()
        r = await svc.client.post(
            "/v2/streaming/sessions", json={"template_id": svc.template_id}, timeout=300
        )
        answered = time.monotonic()
    finally:
        stop.set()
        await asyncio.to_thread(watcher.join, 60)
    assert crashed.is_set(), "PostgreSQL was not crashed during the start"
    print(f"\nstart while PostgreSQL crashed -> {r.status_code} {r.text[:300]}")
    record("PostgreSQL crashed during start", "start answered after", answered - t0)
    assert not svc.app.state.services.sessions.live
    await asyncio.to_thread(pg.start)
    t_up = time.monotonic()
    await wait_until(healthy, "the service to see PostgreSQL again", timeout=60)
    sessions = (await svc.client.get("/v2/streaming/sessions")).json()["sessions"]
    failed = sessions[0]
    assert failed["session_id"] != sid
    assert not await participants(svc.livekit, failed["room"])

    async def row_settled() -> dict | None:
        s = await svc.session(failed["session_id"])
        return s if s["status"] not in ("starting", "started") else None

    s = await wait_until(row_settled, "the failed start's row to say so", timeout=60)
    assert (s["status"], s["stop_reason"]) == ("failed", "start_failed"), s
    t1 = time.monotonic()
    await svc.start()
    record("PostgreSQL crashed during start", "next session to first frame", time.monotonic() - t1)
    del t_up
    assert_database_unavailable(during)
    assert_database_unavailable(r)
