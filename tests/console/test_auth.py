"""Signing in and out, the lockout after repeated wrong passwords, and sessions that end."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import staff_user

pytestmark = pytest.mark.django_db

PASSWORD = "S3cure-pass-2026"
LOGIN = "/console/login/"


def _sign_in(client: Client, username: str, password: str = PASSWORD, **extra):
    return client.post(LOGIN, {"username": username, "password": password, **extra})


def test_the_console_lives_at_the_configured_login_and_home_urls(settings):
    assert reverse(settings.LOGIN_URL) == LOGIN
    assert reverse(settings.LOGIN_REDIRECT_URL) == "/console/"


def test_an_agent_signs_in_lands_where_they_were_going_and_signs_out(client):
    staff_user("agent", username="thu.ngan")
    response = client.get("/console/customers/?q=nguyen")
    assert response.status_code == 302
    login_page = client.get(response["Location"])
    assert login_page.status_code == 200
    assert "Tên đăng nhập" in login_page.content.decode()
    signed_in = _sign_in(client, "thu.ngan", next="/console/customers/?q=nguyen")
    assert signed_in.status_code == 302 and signed_in["Location"] == "/console/customers/?q=nguyen"
    assert client.get("/console/").status_code == 200
    assert client.post("/console/logout/").status_code == 302
    assert client.get("/console/").status_code == 302


def test_it_never_redirects_to_another_site_after_sign_in(client):
    staff_user("agent", username="thu.ngan")
    response = _sign_in(client, "thu.ngan", next="https://evil.example/")
    assert response["Location"] == "/console/"


def test_a_wrong_password_is_refused_with_a_message_in_vietnamese(client):
    staff_user("agent", username="thu.ngan")
    response = _sign_in(client, "thu.ngan", "wrong-password")
    assert response.status_code == 400
    assert "Tên đăng nhập hoặc mật khẩu không đúng" in response.content.decode()
    assert client.get("/console/").status_code == 302


def test_it_locks_a_user_name_out_after_the_failure_limit_with_a_clear_page(client, settings):
    staff_user("agent", username="thu.ngan")
    for _attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(client, "thu.ngan", "guess").status_code == 400
    locked = _sign_in(client, "thu.ngan", "guess")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Tạm khóa đăng nhập" in text
    assert f"{settings.AXES_FAILURE_LIMIT} lần" in text
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    assert f"{minutes} phút" in text
    # Even the right password does not get in while the lockout lasts.
    again = _sign_in(client, "thu.ngan")
    assert again.status_code == 429
    assert client.get("/console/").status_code == 302


def test_a_lockout_of_one_user_name_does_not_lock_a_colleague_out(client, settings):
    staff_user("agent", username="thu.ngan")
    staff_user("agent", username="dong.nghiep")
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(client, "thu.ngan", "guess")
    assert _sign_in(client, "dong.nghiep").status_code == 302


def test_the_lockout_page_is_in_english_on_request(client, settings):
    staff_user("agent", username="thu.ngan")
    client.get("/console/login/?lang=en")
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        response = _sign_in(client, "thu.ngan", "guess")
    assert response.status_code == 429
    assert "Sign-in locked for now" in response.content.decode()


def test_a_session_ends_after_the_configured_age(client, settings):
    staff_user("agent", username="thu.ngan")
    _sign_in(client, "thu.ngan")
    assert client.get("/console/").status_code == 200
    session = Session.objects.get()
    lifetime = session.expire_date - timezone.now()
    assert lifetime <= datetime.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    assert lifetime > datetime.timedelta(seconds=settings.SESSION_COOKIE_AGE - 60)
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
    # The clock passes the expiry: the next request is sent to sign in again.
    Session.objects.update(expire_date=timezone.now() - datetime.timedelta(seconds=1))
    response = client.get("/console/")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


def test_the_console_is_vietnamese_first_with_an_english_switch(client):
    staff_user("agent", username="thu.ngan")
    _sign_in(client, "thu.ngan")
    vi = client.get("/console/").content.decode()
    assert '<html lang="vi">' in vi and "Hàng đợi công việc" in vi
    en = client.get("/console/?lang=en").content.decode()
    assert '<html lang="en">' in en and "Work queues" in en
