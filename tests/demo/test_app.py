"""The seed's routes, every variant, against a real uvicorn: answers and bad input."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from loopscope.demo import VARIANTS
from loopscope.server import ServerProcess


@pytest.fixture(scope="module")
def client(demo_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_server.url, timeout=10) as client:
        yield client


@pytest.mark.parametrize("variant", VARIANTS)
def test_login_welcomes_a_user_with_the_right_password(client: httpx.Client, variant: str) -> None:
    response = client.post(f"/login/{variant}", json={"username": "user1", "password": "password1"})
    assert response.status_code == 200
    assert response.json() == {"message": "Welcome, user1!"}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "body",
    [
        {"username": "user1", "password": "password2"},
        {"username": "nobody", "password": "password1"},
        {"username": "user1' OR '1'='1", "password": "x' OR '1'='1"},
    ],
)
def test_login_refuses_wrong_credentials_with_401(
    client: httpx.Client, variant: str, body: dict[str, str]
) -> None:
    response = client.post(f"/login/{variant}", json=body)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid credentials"}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("action", "key"), [("info", "info"), ("history", "history")])
def test_info_and_history_answer_with_the_users_row(
    client: httpx.Client, variant: str, action: str, key: str
) -> None:
    response = client.post(f"/{action}/{variant}", json={"username": "user2"})
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "user2"
    assert body[key].startswith("user2 ")
    assert "password" not in body


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("action", ["info", "history"])
@pytest.mark.parametrize(
    "username", ["nobody", "user0' --", "' OR 1=1 --", 'user0"; DROP TABLE users']
)
def test_unknown_and_injection_shaped_users_are_not_found(
    client: httpx.Client, variant: str, action: str, username: str
) -> None:
    response = client.post(f"/{action}/{variant}", json={"username": username})
    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}


def test_an_injection_attempt_leaves_the_users_table_intact(client: httpx.Client) -> None:
    client.post("/info/blocking", json={"username": "x'; DROP TABLE users; --"})
    assert client.post("/info/blocking", json={"username": "user3"}).status_code == 200


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"username": "user1", "password": ', "malformed JSON"),
        (b'{"username": "user1"}', "missing password"),
        (b"{}", "missing fields"),
        (b'["user1", "password1"]', "not an object"),
        (b'{"username": "' + b"u" * 65 + b'", "password": "p"}', "over-long username"),
        (b'{"username": "user1", "password": "' + b"p" * 129 + b'"}', "over-long password"),
        (b'{"username": "user1", "password": "password1", "admin": true}', "extra field"),
    ],
)
def test_bad_login_bodies_get_a_422_not_a_500(
    client: httpx.Client, variant: str, content: bytes, why: str
) -> None:
    response = client.post(
        f"/login/{variant}", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, why


def test_credentials_in_the_query_string_are_not_accepted(client: httpx.Client) -> None:
    response = client.post("/login/blocking", params={"username": "user1", "password": "password1"})
    assert response.status_code == 422


@pytest.mark.parametrize("action", ["login", "info", "history"])
def test_an_unknown_variant_gets_a_404_that_names_the_variants(
    client: httpx.Client, action: str
) -> None:
    response = client.post(f"/{action}/turbo", json={"username": "user1"})
    assert response.status_code == 404
    assert "Unknown variant 'turbo'" in response.json()["detail"]
    assert "async-blocking" in response.json()["detail"]


def test_an_unknown_action_gets_a_plain_404(client: httpx.Client) -> None:
    assert client.post("/delete/blocking", json={}).status_code == 404
