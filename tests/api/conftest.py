"""API fixtures: a fresh app per test (own data dir and database) and an HTTP client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from greenroom.api import create_app

from .support import make_settings, open_client


@pytest.fixture
def app(data_dir: Path) -> FastAPI:
    return create_app(make_settings(data_dir), warm_up=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for c in open_client(app):
        yield c
