"""Auth and the one error shape: 401, 404, 405, 409, 413, 422 and 503, each with its message."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from .support import API_KEY

pytestmark = pytest.mark.unit

PROTECTED = [
    ("GET", "/v1/templates"),
    ("POST", "/v1/templates"),
    ("GET", "/v1/templates/tpl_x"),
    ("PATCH", "/v1/templates/tpl_x"),
    ("DELETE", "/v1/templates/tpl_x"),
    ("GET", "/v1/backgrounds"),
    ("POST", "/v1/backgrounds"),
    ("GET", "/v1/backgrounds/bg_x/thumbnail.jpg"),
    ("DELETE", "/v1/backgrounds/bg_x"),
    ("POST", "/v2/streaming/sessions"),
    ("GET", "/v2/streaming/sessions"),
    ("GET", "/v2/streaming/sessions/ses_x"),
    ("POST", "/v2/streaming/sessions/ses_x/speak"),
    ("POST", "/v2/streaming/sessions/ses_x/interrupt"),
    ("POST", "/v2/streaming/sessions/ses_x/keep_alive"),
    ("PUT", "/v2/streaming/sessions/ses_x/background"),
    ("GET", "/v2/streaming/sessions/ses_x/snapshot.png"),
    ("DELETE", "/v2/streaming/sessions/ses_x"),
]


@pytest.fixture
async def anon(app: FastAPI, client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client without the API key (``client`` keeps the app's lifespan open)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://greenroom.test"
    ) as c:
        yield c


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_api_route_needs_the_key(
    anon: httpx.AsyncClient, method: str, path: str
) -> None:
    r = await anon.request(method, path, json={})
    assert r.status_code == 401
    assert r.json() == {
        "error": {
            "code": "unauthorized",
            "message": "missing API key: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'",
            "field": None,
        }
    }
    r = await anon.request(method, path, json={}, headers={"X-Api-Key": API_KEY + "x"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "invalid API key"


async def test_both_headers_work_and_health_is_open(anon: httpx.AsyncClient) -> None:
    assert (
        await anon.get("/v1/templates", headers={"Authorization": f"Bearer {API_KEY}"})
    ).status_code == 200
    assert (await anon.get("/v1/templates", headers={"X-Api-Key": API_KEY})).status_code == 200
    assert (
        await anon.get("/v1/templates", headers={"Authorization": f"Basic {API_KEY}"})
    ).status_code == 401
    health = await anon.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    metrics = await anon.get("/metrics", headers={"X-Api-Key": API_KEY})
    assert metrics.status_code == 200
    assert "greenroom_sessions_active 0.0" in metrics.text
    assert "greenroom_http_requests_total" in metrics.text
    assert (await anon.get("/openapi.json")).json()["info"]["title"] == "Greenroom"
    assert (await anon.get("/docs")).status_code == 200


async def test_not_found(client: httpx.AsyncClient) -> None:
    cases = {
        ("GET", "/v1/templates/tpl_nope"): "template 'tpl_nope' not found",
        ("DELETE", "/v1/templates/tpl_nope"): "template 'tpl_nope' not found",
        ("GET", "/v1/backgrounds/bg_nope"): "background 'bg_nope' not found",
        ("GET", "/v2/streaming/sessions/ses_nope"): "session 'ses_nope' not found",
        ("DELETE", "/v2/streaming/sessions/ses_nope"): "session 'ses_nope' not found",
        ("POST", "/v2/streaming/sessions/ses_nope/interrupt"): "session 'ses_nope' not found",
        ("GET", "/v2/streaming/sessions/ses_nope/snapshot.png"): "session 'ses_nope' not found",
    }
    for (method, path), message in cases.items():
        r = await client.request(method, path)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"] == {"code": "not_found", "message": message, "field": None}
    r = await client.patch("/v1/templates/tpl_nope", json={"background": "not a background"})
    assert r.status_code == 404  # the unknown id is reported before the bad value
    r = await client.post("/v2/streaming/sessions", json={"template_id": "tpl_nope"})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "template 'tpl_nope' not found"
    r = await client.get("/v3/nothing")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "no such route; see /docs for the API"
    r = await client.put("/v1/templates")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


async def test_validation_errors_name_the_field(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v2/streaming/sessions", json={"template_id": "tpl_x", "livekit_room": "a b"}
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["field"] == "livekit_room" and "should match pattern" in err["message"]

    r = await client.post("/v2/streaming/sessions/ses_x/speak", json={"text": ""})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "text"

    r = await client.post(
        "/v2/streaming/sessions/ses_x/speak", json={"text": "hi", "task_type": "sing"}
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "task_type"
    assert "'repeat' or 'talk'" in r.json()["error"]["message"]

    r = await client.put(
        "/v2/streaming/sessions/ses_x/background", json={"background": "#00ff00", "transition": 9}
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "transition"

    r = await client.post(
        "/v1/templates", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith("the body is not valid JSON")

    r = await client.get("/v2/streaming/sessions", params={"status": "sleeping"})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "status"


async def test_a_session_that_cannot_start_reports_why_and_is_recorded(
    client: httpx.AsyncClient,
) -> None:
    """Nothing listens at the configured LiveKit URL: 503 with the reason, a failed row, and
    the wrong-state answers (409) for everything one would do next."""
    t = (await client.post("/v1/templates", json={"name": "t", "background": "#0044ff"})).json()
    r = await client.post("/v2/streaming/sessions", json={"template_id": t["id"]})
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "session_start_failed"
    assert err["message"].startswith("could not start the 'local' avatar")

    sessions = (await client.get("/v2/streaming/sessions")).json()["sessions"]
    assert len(sessions) == 1
    s = sessions[0]
    assert (s["status"], s["stop_reason"], s["template_id"]) == ("failed", "start_failed", t["id"])
    assert s["error"]
    sid = s["session_id"]

    for method, path, body in [
        ("POST", f"/v2/streaming/sessions/{sid}/speak", {"text": "hello"}),
        ("POST", f"/v2/streaming/sessions/{sid}/interrupt", None),
        ("POST", f"/v2/streaming/sessions/{sid}/keep_alive", None),
        ("PUT", f"/v2/streaming/sessions/{sid}/background", {"background": "#ffffff"}),
        ("GET", f"/v2/streaming/sessions/{sid}/snapshot.png", None),
    ]:
        r = await client.request(method, path, json=body)
        assert r.status_code == 409, (path, r.text)
        assert r.json()["error"] == {
            "code": "conflict",
            "message": f"session {sid} is failed (start_failed); start a new session",
            "field": None,
        }
    r = await client.delete(f"/v2/streaming/sessions/{sid}")
    assert r.status_code == 409
    assert r.json()["error"]["message"] == f"session {sid} is already failed (start_failed)"


async def test_secrets_are_not_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    await client.get("/v1/templates")
    await client.get("/v1/templates", headers={"X-Api-Key": "wrong-key-123"})
    t = (await client.post("/v1/templates", json={"name": "t"})).json()
    await client.post("/v2/streaming/sessions", json={"template_id": t["id"]})
    text = caplog.text
    assert "GET /v1/templates 200" in text
    assert API_KEY not in text and "wrong-key-123" not in text and "secret" not in text


async def test_json_bodies_are_capped(client: httpx.AsyncClient) -> None:
    big = b'{"name": "' + b"x" * 2_000_000 + b'"}'
    r = await client.post(
        "/v1/templates", content=big, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["error"] == {
        "code": "payload_too_large",
        "message": "request bodies are limited to 1048576 bytes",
        "field": None,
    }

    async def chunks():  # no Content-Length: counted as it arrives
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    r = await client.post(
        "/v1/templates", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert (await client.get("/v1/templates")).json()["templates"] == []
