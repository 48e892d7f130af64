"""Property-based fuzzing of the API from its own OpenAPI schema: no input gives a 500.

Runs against the ASGI app in-process. Sessions cannot start here (no LiveKit at the
configured URL), so session routes answer 404/409/422/503, never 500, and every answer
must match the documented schema.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from greenroom.api import create_app

from .support import AUTH, make_settings, png_bytes

pytestmark = pytest.mark.unit


def seeded_app(data_dir: Path):  # type: ignore[no-untyped-def]
    app = create_app(make_settings(data_dir))
    # some real rows, so that valid ids exist alongside the generated ones
    services = app.state.services
    services.templates.create(
        {
            "name": "seed",
            "provider": "local",
            "avatar_id": "default",
            "voice": None,
            "quality": "high",
            "background": "#0044ff",
            "keying": {"mode": "chroma"},
            "provider_options": {},
            "idle_timeout": 30,
        }
    )
    upload = services.library.new_upload()
    upload.write(png_bytes())
    upload.close()
    services.library.ingest(upload.path, "seed.png")
    return app


CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def test_api_never_answers_500(data_dir: Path) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", seeded_app(data_dir))
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(headers=AUTH, checks=CHECKS)

        try:
            run()
        except Exception as exc:
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:1500]}"
    assert operations >= 15
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
