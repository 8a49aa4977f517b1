"""The opt-out link: GET asks, POST opts out at once; a changed token is a plain 404."""

from __future__ import annotations

import pytest

from customers import unsubscribe
from payments.models import ReminderOptOut

pytestmark = pytest.mark.django_db


def path_of(customer, channel="sms"):
    token = unsubscribe.unsubscribe_token(customer_id=customer.pk, channel=channel)
    return f"/unsubscribe/{token}/"


def test_get_asks_in_vietnamese_and_changes_nothing(client, customer):
    response = client.get(path_of(customer))
    assert response.status_code == 200
    text = response.content.decode()
    assert "Ngừng nhận tin nhắc" in text and customer.code in text
    assert 'data-action="unsubscribe"' in text
    assert not ReminderOptOut.objects.exists()


def test_the_page_in_english(client, customer):
    response = client.get(path_of(customer, "email") + "?lang=en")
    assert "Stop the e-mail reminders" in response.content.decode()


def test_post_opts_out_of_that_channel_only(client, customer):
    response = client.post(path_of(customer, "email"))
    assert response.status_code == 200
    assert 'data-field="unsubscribe-done"' in response.content.decode()
    assert client.post(path_of(customer, "email")).status_code == 200
    assert list(ReminderOptOut.objects.values_list("customer", "channel")) == [
        (customer.pk, "email")
    ]


def test_the_url_in_messages_opens_the_page(customer, settings):
    url = unsubscribe.unsubscribe_url(customer_id=customer.pk, channel="sms")
    assert url == settings.PORTAL_BASE_URL + path_of(customer)


@pytest.mark.parametrize("change", ["channel", "customer", "mac", "garbage"])
def test_a_changed_token_is_a_plain_404(client, customer, change):
    token = unsubscribe.unsubscribe_token(customer_id=customer.pk, channel="sms")
    ident, channel, mac = token.split("-", 2)
    changed = {
        "channel": f"{ident}-email-{mac}",
        "customer": f"{int(ident, 36) + 1:x}-sms-{mac}",
        "mac": f"{ident}-sms-{'A' * 16}",
        "garbage": "not-a-token",
    }[change]
    assert client.get(f"/unsubscribe/{changed}/").status_code == 404
    assert client.post(f"/unsubscribe/{changed}/").status_code == 404
    assert not ReminderOptOut.objects.exists()


def test_a_token_signed_with_another_key_is_refused(client, customer, settings):
    path = path_of(customer)
    settings.UNSUBSCRIBE_LINK_KEY = "another-key"
    assert client.get(path).status_code == 404
