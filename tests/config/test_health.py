"""/health/: 200 when the database and the broker answer, 503 when either is down; what they are
only for staff or a monitor holding HEALTH_TOKEN."""

from __future__ import annotations

import socket

import pytest
from django.db import connection
from django.test import override_settings

from config.celery import app as celery_app
from tests.factories import staff_user

TOKEN = "health-monitor-token-0123456789"


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.django_db
@override_settings(HEALTH_TOKEN=TOKEN)
def test_it_reports_both_up(client):
    response = client.get("/health/", headers={"Authorization": f"Bearer {TOKEN}"})
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
        public = client.get("/health/")
        with override_settings(HEALTH_TOKEN=TOKEN):
            response = client.get("/health/", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        celery_app.conf.broker_url, celery_app.conf.broker_write_url = original
    assert public.status_code == 503 and public.json() == {"status": "unavailable"}
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False
    assert response.json()["database"]["ok"] is True


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_when_the_database_is_down(client):
    connection.close()
    original = connection.settings_dict["PORT"]
    connection.settings_dict["PORT"] = str(_unused_port())
    try:
        with override_settings(HEALTH_TOKEN=TOKEN):
            response = client.get("/health/", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        connection.close()
        connection.settings_dict["PORT"] = original
    assert response.status_code == 503
    assert response.json()["database"]["ok"] is False


def test_it_only_answers_get(client):
    assert client.post("/health/").status_code == 405


@pytest.mark.django_db
@override_settings(HEALTH_TOKEN=TOKEN)
def test_the_public_is_told_up_or_down_and_nothing_of_what_runs_the_portal(client):
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Apikey {TOKEN}"},
    ):
        response = client.get("/health/", headers=headers)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}, headers


@pytest.mark.django_db
@override_settings(HEALTH_TOKEN="")
def test_without_a_configured_token_no_token_opens_the_details(client):
    for token in ("", "none", "None"):
        response = client.get("/health/", headers={"Authorization": f"Bearer {token}"})
        assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_a_signed_in_staff_member_sees_the_details_an_agent_does_not(client):
    agent = staff_user("agent")
    client.force_login(agent)
    assert client.get("/health/").json() == {"status": "ok"}
    agent.is_staff = True
    agent.save(update_fields=["is_staff"])
    body = client.get("/health/").json()
    assert body["database"] == {"ok": True, "detail": "postgresql"}
    assert body["broker"]["ok"] is True
