"""The wallets at the checkout: offered when configured, their order opened once, and on a
phone "open in MoMo / ZaloPay" besides the web page; the API starts them too."""

from __future__ import annotations

import json
import re

import pytest
from rest_framework.test import APIClient

from payments.models import IdempotencyKey, Payment
from sandbox.models import WalletOrder
from tests.factories import customer_with_bills
from tests.sandbox.wallets import (
    configure_wallets,
    point_wallets_at,
    wallets,  # noqa: F401 - fixture
    wallets_on_live_server,  # noqa: F401 - fixture
)

Status = Payment.Status
PHONE = "Mozilla/5.0 (Linux; Android 14; SM-A155F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
transactional = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _generous_rate_limit(settings):
    settings.LOOKUP_RATE_LIMIT = "1000/m"


def _methods(client, code: str) -> list[str]:
    html = client.get(f"/bills/{code}/").content.decode()
    return re.findall(r'name="method" value="([^"]+)"', html)


@pytest.mark.django_db
def test_the_wallets_are_offered_only_when_configured(client, settings):
    customer, _bills = customer_with_bills(unpaid=1)
    assert _methods(client, customer.code) == ["vietqr", "redirect:SANDBOX"]
    configure_wallets(settings)
    methods = _methods(client, customer.code)
    assert methods == ["vietqr", "redirect:MOMO", "redirect:ZALOPAY", "redirect:SANDBOX"]
    html = client.get(f"/bills/{customer.code}/", HTTP_COOKIE="django_language=en").content
    assert "Pay with Ví MoMo" in html.decode() and "Pay with ZaloPay" in html.decode()
    # KEY1 alone is not a ZaloPay configuration.
    settings.PARTNER_CREDENTIALS = {
        **settings.PARTNER_CREDENTIALS,
        "ZALOPAY": {"key1": settings.PARTNER_CREDENTIALS["ZALOPAY"]["key1"]},
    }
    assert "redirect:ZALOPAY" not in _methods(client, customer.code)


def _start(client, code: str, partner: str, user_agent: str):
    return client.post(
        "/pay/start/",
        {"customer_code": code, "method": f"redirect:{partner}"},
        HTTP_USER_AGENT=user_agent,
    )


def _links(html: str) -> dict[str, str]:
    """The wallet's links on the checkout page, by kind (app, web)."""
    found = re.findall(r'href="([^"]+)" rel="noreferrer" data-wallet-(app|web)', html)
    return {kind: url.replace("&amp;", "&") for url, kind in found}


@transactional
def test_on_a_phone_momo_is_offered_in_its_app_besides_its_web_page(client, wallets_on_live_server):  # noqa: F811
    customer, _bills = customer_with_bills(amounts=[452_160])
    response = _start(client, customer.code, "MOMO", PHONE)
    payment = Payment.objects.get(customer=customer)
    assert response.status_code == 302 and response["Location"] == f"/pay/{payment.pk}/"
    page = client.get(response["Location"], HTTP_USER_AGENT=PHONE)
    links = _links(page.content.decode())
    order = WalletOrder.objects.get()
    assert links == {
        "app": f"{wallets_on_live_server.url}/sandbox/momo/app/{order.token}/",
        "web": f"{wallets_on_live_server.url}/sandbox/momo/pay/{order.token}/",
    }
    assert "User-Agent" in page["Vary"]
    # On a computer there is no app to open: the web page only.
    desktop = client.get(response["Location"], HTTP_USER_AGENT=DESKTOP)
    assert set(_links(desktop.content.decode())) == {"web"}
    # Paying the same bills with MoMo again continues this payment: never a second order.
    assert _start(client, customer.code, "MOMO", PHONE)["Location"] == f"/pay/{payment.pk}/"
    assert WalletOrder.objects.count() == 1 and Payment.objects.count() == 1


@transactional
def test_zalopays_one_link_is_the_app_on_a_phone_and_the_web_page_elsewhere(
    client,
    wallets_on_live_server,  # noqa: F811
):
    customer, _bills = customer_with_bills(amounts=[452_160])
    location = _start(client, customer.code, "ZALOPAY", PHONE)["Location"]
    phone = _links(client.get(location, HTTP_USER_AGENT=PHONE).content.decode())
    desktop = _links(client.get(location, HTTP_USER_AGENT=DESKTOP).content.decode())
    assert set(phone) == {"app"} and set(desktop) == {"web"}
    assert phone["app"] == desktop["web"] and "/sandbox/zalopay/openinapp?order=" in phone["app"]


@transactional
def test_when_the_wallet_does_not_answer_the_payment_waits_and_can_be_asked_again(
    client,
    wallets,  # noqa: F811
    settings,
    live_server,
):
    settings.GATEWAY_HTTP_TIMEOUT = (0.5, 0.5)
    client.cookies["django_language"] = "en"
    customer, _bills = customer_with_bills(amounts=[452_160])
    response = _start(client, customer.code, "MOMO", PHONE)  # MoMo is out of reach
    payment = Payment.objects.get(customer=customer)
    assert response["Location"] == f"/pay/{payment.pk}/" and payment.status == Status.PENDING
    page = client.get(response["Location"], HTTP_USER_AGENT=PHONE)
    html = page.content.decode()
    assert "Ví MoMo did not answer in time." in html and "Ask Ví MoMo again" in html
    assert not _links(html)
    point_wallets_at(settings, live_server.url)  # MoMo is back
    again = client.post(f"/pay/{payment.pk}/open/", HTTP_USER_AGENT=PHONE)
    assert again["Location"] == f"/pay/{payment.pk}/"
    assert set(_links(client.get(again["Location"], HTTP_USER_AGENT=PHONE).content.decode())) == {
        "app",
        "web",
    }
    assert WalletOrder.objects.get().order_id == payment.reference


@transactional
def test_when_the_wallet_refuses_the_payment_fails_and_the_household_chooses_again(
    client,
    wallets_on_live_server,  # noqa: F811
):
    client.cookies["django_language"] = "en"
    customer, _bills = customer_with_bills(amounts=[60_000_000])  # over MoMo's limit
    response = _start(client, customer.code, "MOMO", DESKTOP)
    assert response["Location"] == f"/bills/{customer.code}/"
    assert Payment.objects.get(customer=customer).status == Status.FAILED
    page = client.get(response["Location"]).content.decode()
    assert "Ví MoMo could not take this payment." in page


@transactional
def test_the_api_starts_a_wallet_payment_with_its_links(wallets_on_live_server):  # noqa: F811
    api = APIClient()
    customer, _bills = customer_with_bills(unpaid=1)
    response = api.post(
        "/api/v1/payments/",
        data=json.dumps({"customer_code": customer.code, "method": "redirect", "partner": "MOMO"}),
        content_type="application/json",
        headers={"Idempotency-Key": "wallet-1"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert "/sandbox/momo/pay/" in body["redirect_url"] and "/sandbox/momo/app/" in body["app_url"]
    # The same key again: the same answer, links and all.
    assert IdempotencyKey.objects.get().response_body["app_url"] == body["app_url"]


@transactional
def test_the_api_says_502_when_the_wallet_does_not_answer_and_the_same_key_continues(
    wallets,  # noqa: F811
    settings,
    live_server,
):
    settings.GATEWAY_HTTP_TIMEOUT = (0.5, 0.5)
    api = APIClient()
    customer, _bills = customer_with_bills(unpaid=1)
    request = {"customer_code": customer.code, "method": "redirect", "partner": "ZALOPAY"}

    def post():
        return api.post(
            "/api/v1/payments/",
            data=json.dumps(request),
            content_type="application/json",
            headers={"Idempotency-Key": "wallet-2"},
        )

    response = post()
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "partner_unavailable"
    point_wallets_at(settings, live_server.url)
    again = post()
    assert again.status_code == 200, again.content  # the payment already open, continued
    assert again.json()["app_url"] == again.json()["redirect_url"]
    assert Payment.objects.filter(customer=customer).count() == 1
