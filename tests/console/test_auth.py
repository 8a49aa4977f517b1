"""Signing in and out, the lockout after repeated wrong passwords, and sessions that end."""

from __future__ import annotations

import datetime
import time

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


# --- Behind the proxy: per (user name, address), and a ceiling per user name -----------------------
PROXY = "10.0.0.1"


def _sign_in_from(client: Client, address: str, username: str, password: str = PASSWORD):
    return client.post(
        LOGIN,
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=address,
    )


def test_behind_the_proxy_one_clients_failures_do_not_lock_the_name_for_another(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    staff_user("agent", username="thu.ngan")
    attacker = Client()
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        # What the client writes before the proxy's hop changes nothing: it is not trusted.
        answer = _sign_in_from(attacker, f"6.6.6.{attempt}, 203.0.113.7", "thu.ngan", "guess")
    assert answer.status_code == 429
    assert _sign_in_from(attacker, "203.0.113.7", "thu.ngan").status_code == 429
    assert _sign_in_from(Client(), "198.51.100.9", "thu.ngan").status_code == 302


def _fail_from_many_addresses(settings, count: int) -> None:
    for n in range(count):
        answer = _sign_in_from(Client(), f"203.0.113.{n + 1}", "thu.ngan", "guess")
        assert answer.status_code == 400, n


def test_failures_for_one_name_from_many_addresses_hit_a_ceiling(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.SIGNIN_USERNAME_RATE = "6/h"
    staff_user("agent", username="thu.ngan")
    staff_user("agent", username="dong.nghiep")
    _fail_from_many_addresses(settings, 6)
    locked = _sign_in_from(Client(), "198.51.100.9", "thu.ngan")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "từ nhiều nơi khác nhau" in text
    minutes = -(-int(locked["Retry-After"]) // 60)
    assert 1 <= minutes <= 60 and f"{minutes} phút" in text
    admin = Client().post(
        "/admin/login/?next=/admin/",
        {"username": "thu.ngan", "password": PASSWORD},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="198.51.100.10",
    )
    assert admin.status_code == 429
    # Only that name: a colleague signs in from the same address.
    assert _sign_in_from(Client(), "198.51.100.9", "dong.nghiep").status_code == 302


def test_the_ceiling_ends_on_its_own_and_refused_tries_do_not_prolong_it(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.SIGNIN_USERNAME_RATE = "3/2s"
    staff_user("agent", username="thu.ngan")
    # Start at the beginning of a window, so the three failures land in one.
    time.sleep(2 - time.time() % 2)
    _fail_from_many_addresses(settings, 3)
    locked = _sign_in_from(Client(), "198.51.100.9", "thu.ngan")
    assert locked.status_code == 429
    wait = int(locked["Retry-After"])
    assert wait <= 3
    time.sleep(0.5)
    assert _sign_in_from(Client(), "198.51.100.9", "thu.ngan", "guess").status_code == 429
    time.sleep(wait)
    assert _sign_in_from(Client(), "198.51.100.9", "thu.ngan").status_code == 302


def test_the_agents_own_address_gets_in_past_the_ceiling_and_resets_it(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.SIGNIN_USERNAME_RATE = "6/h"
    staff_user("agent", username="thu.ngan")
    counter = Client()
    assert _sign_in_from(counter, "192.0.2.50", "thu.ngan").status_code == 302
    counter.post("/console/logout/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="192.0.2.50")
    _fail_from_many_addresses(settings, 6)
    assert _sign_in_from(Client(), "198.51.100.9", "thu.ngan").status_code == 429
    assert _sign_in_from(counter, "192.0.2.50", "thu.ngan").status_code == 302
    # The success reset the count: the name is open again from elsewhere too.
    assert _sign_in_from(Client(), "198.51.100.9", "thu.ngan").status_code == 302
