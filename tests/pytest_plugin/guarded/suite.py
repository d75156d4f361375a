"""The guarded app's tests, as its project would write them: every route under `TestClient`
(with and without `with`), and under `httpx.AsyncClient` on anyio's plugin and on pytest-asyncio.
Copied into the `pytester` project as `test_guarded.py`."""

import httpx
import pytest
from fastapi.testclient import TestClient

from guarded.app import app

ROUTES = ["sleep", "cpu", "db", "async-sleep", "def-route", "offload"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("route", ROUTES)
def test_testclient(route: str) -> None:
    with TestClient(app) as client:
        assert client.get(f"/{route}").status_code == 200


@pytest.mark.parametrize("route", ROUTES)
def test_testclient_without_lifespan(route: str) -> None:
    assert TestClient(app).get(f"/{route}").status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize("route", ROUTES)
async def test_asyncclient_anyio(route: str) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        assert (await client.get(f"/{route}")).status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize("route", ROUTES)
async def test_asyncclient_pytest_asyncio(route: str) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        assert (await client.get(f"/{route}")).status_code == 200
