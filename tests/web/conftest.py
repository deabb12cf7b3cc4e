"""Fixtures of the web app tests: the app with the tiny network."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def make_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """``make_client(**create_app_kwargs)``: a started TestClient (on http://127.0.0.1), closed at the end."""
    from fastapi.testclient import TestClient

    from stylize.web import create_app

    from .helpers import tiny_factory

    clients: list[TestClient] = []

    def make(**kwargs: Any) -> TestClient:
        kwargs.setdefault("backbone_factory", tiny_factory)
        kwargs.setdefault("devices", ("cpu",))
        kwargs.setdefault("preview_interval", 0.0)
        kwargs.setdefault("event_interval", 0.0)
        kwargs.setdefault("work_dir", tmp_path_factory.mktemp("web"))
        client = TestClient(create_app(**kwargs), base_url="http://127.0.0.1")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    return make_client()


