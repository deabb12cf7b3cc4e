"""Fixtures of the web app tests: the app with the tiny network."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def make_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """``make_client(**create_app_kwargs)``: a started TestClient (on http://127.0.0.1) that sends the
    server's token, closed at the end. Fields of :class:`stylize.web.app.Limits` may be given directly."""
    from fastapi.testclient import TestClient

    from stylize.web import create_app
    from stylize.web.app import Limits

    from .helpers import tiny_factory

    clients: list[TestClient] = []

    def make(**kwargs: Any) -> TestClient:
        kwargs.setdefault("backbone_factory", tiny_factory)
        kwargs.setdefault("devices", ("cpu",))
        kwargs.setdefault("preview_interval", 0.0)
        kwargs.setdefault("event_interval", 0.0)
        kwargs.setdefault("job_nice", 0)  # on a busy machine a niced job process crawls; tests of the priority set it
        kwargs.setdefault("data_dir", tmp_path_factory.mktemp("web"))
        names = {f.name for f in dataclasses.fields(Limits)}
        limits = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        if limits:
            kwargs["limits"] = Limits(**limits)
        app = create_app(**kwargs)
        client = TestClient(app, base_url="http://127.0.0.1")
        client.headers["x-stylize-token"] = app.state.server.token
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    return make_client()
