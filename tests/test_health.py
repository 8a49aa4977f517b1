"""/health/: 200 with the state of the database and the broker, 503 when either is down."""

from __future__ import annotations

import socket

import pytest
from django.db import connection

from portal.celery import app as celery_app


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.django_db
def test_it_reports_both_up(client):
    response = client.get("/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "detail": "postgresql"}
    assert body["broker"]["ok"] is True
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_it_answers_503_when_the_broker_is_down(client):
    original = celery_app.conf.broker_url, celery_app.conf.broker_write_url
    dead = f"redis://127.0.0.1:{_unused_port()}/0"
    celery_app.conf.broker_url = celery_app.conf.broker_write_url = dead
    try:
        response = client.get("/health/")
    finally:
        celery_app.conf.broker_url, celery_app.conf.broker_write_url = original
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False
    assert response.json()["database"]["ok"] is True


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_when_the_database_is_down(client):
    connection.close()
    original = connection.settings_dict["PORT"]
    connection.settings_dict["PORT"] = str(_unused_port())
    try:
        response = client.get("/health/")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = original
    assert response.status_code == 503
    assert response.json()["database"]["ok"] is False


def test_it_only_answers_get(client):
    assert client.post("/health/").status_code == 405
