"""The load a compositor worker reports to LiveKit (which gives jobs by ``1 - load`` and
none past the threshold): full at ``max_sessions`` or at ``cpu_full``, whichever first."""

from __future__ import annotations

import pytest

from greenroom.compositor.worker import WorkerLoad, parse_dispatch_metadata
from greenroom.errors import InvalidInput

pytestmark = pytest.mark.unit


def test_full_at_max_sessions_when_the_cpu_is_idle() -> None:
    load = WorkerLoad(max_sessions=4, cpu_full=0.85)
    assert load.of(3, 0.0) < load.threshold <= load.of(4, 0.0)


def test_full_when_the_cpu_is_busy_with_fewer_sessions() -> None:
    load = WorkerLoad(max_sessions=4, cpu_full=0.85)
    assert load.of(1, 0.5) < load.threshold  # room left
    assert load.of(1, 0.9) >= load.threshold  # busy machine: no more jobs
    assert load.of(0, 1.0) <= 1.0
    assert WorkerLoad(max_sessions=4, cpu_full=0).of(1, 1.0) < load.threshold  # CPU rule off


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"max_sessions": 0}, "max_sessions"),
    ({"max_sessions": 2, "cpu_full": 1.5}, "cpu_full"),
])  # fmt: skip
def test_bad_settings_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        WorkerLoad(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_a_job_runs_only_the_built_in_avatar() -> None:
    meta = '{"avatar_identity": "a", "avatar": {"provider": "heygen"}}'
    with pytest.raises(InvalidInput) as err:
        parse_dispatch_metadata(meta)
    assert err.value.field == "avatar.provider"
    ok = parse_dispatch_metadata('{"avatar_identity": "a", "avatar": {"voice": "en-us"}}')
    assert ok.avatar is not None and ok.avatar.provider == "local" and ok.avatar.voice == "en-us"
