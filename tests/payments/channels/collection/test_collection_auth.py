"""Who may call the collection API: signed partners only, every refusal kept in the inbox."""

from __future__ import annotations

import time

import pytest
from django.test import Client, RequestFactory

from payments.channels.collection import auth, signing
from payments.models import InboundMessage, Partner, Payment
from tests.factories import customer_with_bills
from tests.payments.channels.collection.test_collection_support import (
    INQUIRY,
    PAYMENTS,
    REVERSALS,
    VCB_SECRET,
    encode,
    notice,
    partner_secrets,  # noqa: F401 - fixture
    post,
    signed_headers,
    signed_post,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("partner_secrets")]


@pytest.fixture
def client() -> Client:
    return Client()


def _refused(response, *, reason: str) -> InboundMessage:
    assert response.status_code == 401, response.content
    error = response.json()["error"]
    assert error["code"] == "unauthorized" and error["message"]
    assert response["WWW-Authenticate"].startswith("HMAC-SHA256")
    message = InboundMessage.objects.get(outcome="unauthorized", outcome_detail=reason)
    assert message.processed_at is not None
    assert message.response_status == 401 and message.response_body == response.json()
    return message


def test_the_signature_is_an_hmac_sha256_of_timestamp_method_path_and_body():
    # Independent vector: printf '%s\n%s\n%s\n%s' 1764209702 POST /api/v1/collection/inquiry/ \
    #   '{"customer_code":"PA14HT0012345"}' | openssl dgst -sha256 -hmac "$VCB_SECRET"
    body = b'{"customer_code":"PA14HT0012345"}'
    expected = "e83e5091944df9e190c8a80feb7ba023d169c093ab577bbe226fce411202aff4"
    assert signing.sign(VCB_SECRET, "1764209702", "POST", INQUIRY, body) == expected
    assert signing.signature_matches(VCB_SECRET, "1764209702", "post", INQUIRY, body, expected)
    for timestamp, method, path in [
        ("1764209703", "POST", INQUIRY),
        ("1764209702", "GET", INQUIRY),
        ("1764209702", "POST", PAYMENTS),
    ]:
        assert not signing.signature_matches(VCB_SECRET, timestamp, method, path, body, expected)


def test_a_notice_signed_for_payments_is_refused_by_reversals(client):
    """A signed payment notice that also holds a `reason` was once a valid reversal, byte for
    byte: the signature now binds the path, so it is refused before its body is read."""
    customer, bills = customer_with_bills(unpaid=1)
    body = encode({**notice(customer, bills, "VCB-CROSS"), "reason": "not meant as a reversal"})
    headers = signed_headers(body, PAYMENTS)
    message = _refused(post(client, REVERSALS, body, headers), reason="invalid_signature")
    assert message.kind == InboundMessage.Kind.REVERSAL
    assert not Payment.objects.exists()
    # Nor as an inquiry: the same headers and body, another path.
    assert post(client, INQUIRY, body, headers).status_code == 401


def test_a_payment_reversed_by_a_replayed_notice_stays_paid(client):
    customer, bills = customer_with_bills(unpaid=1)
    paid = encode(notice(customer, bills, "VCB-CROSS-2"))
    assert post(client, PAYMENTS, paid, signed_headers(paid, PAYMENTS)).status_code == 201
    # A captured notice with a `reason`, signed for /payments/, sent to /reversals/.
    both = encode({**notice(customer, bills, "VCB-CROSS-2"), "reason": "replayed"})
    refused = post(client, REVERSALS, both, signed_headers(both, PAYMENTS))
    assert refused.status_code == 401
    assert Payment.objects.get().status == Payment.Status.SUCCEEDED


def test_it_answers_a_correctly_signed_inquiry(client):
    customer, _bills = customer_with_bills(unpaid=1)
    response = signed_post(client, INQUIRY, {"customer_code": customer.code})
    assert response.status_code == 200, response.content


def test_it_rejects_a_tampered_signature(client):
    customer, bills = customer_with_bills(unpaid=1)
    body = encode(notice(customer, bills, "VCB-T1"))
    headers = signed_headers(body, PAYMENTS)
    tampered = body.replace(str(bills[0].amount).encode(), b"1")
    message = _refused(post(client, PAYMENTS, tampered, headers), reason="invalid_signature")
    assert message.signature_valid is False
    assert message.kind == InboundMessage.Kind.COLLECTION
    assert message.partner.code == "VCB"
    bills[0].refresh_from_db()
    assert not bills[0].is_paid


def test_it_rejects_a_signature_made_with_another_secret(client):
    customer, _ = customer_with_bills(unpaid=1)
    response = signed_post(
        client, INQUIRY, {"customer_code": customer.code}, secret="someone-elses-secret"
    )
    _refused(response, reason="invalid_signature")


def test_it_rejects_an_upper_case_or_truncated_signature(client):
    body = encode({"customer_code": "PA14HT0000001"})
    headers = signed_headers(body, INQUIRY)
    for signature in (headers["X-Signature"].upper(), headers["X-Signature"][:-2]):
        response = post(client, INQUIRY, body, {**headers, "X-Signature": signature})
        assert response.status_code == 401


# Two seconds past the window: int(time.time()) drops up to a second, and the request takes time.
@pytest.mark.parametrize("offset", [-302, 302, -3600, 86400])
def test_it_rejects_a_stale_or_future_timestamp(client, offset):
    customer, _ = customer_with_bills(unpaid=1)
    response = signed_post(
        client, INQUIRY, {"customer_code": customer.code}, timestamp=int(time.time()) + offset
    )
    message = _refused(response, reason="stale_timestamp")
    # The signature was right: only the clock was wrong, and the record says so.
    assert message.signature_valid is True
    assert "X-Timestamp" in response.json()["error"]["fields"]


@pytest.mark.parametrize("offset", [-290, 290])
def test_it_accepts_a_timestamp_inside_the_window(client, offset):
    customer, _ = customer_with_bills(unpaid=1)
    response = signed_post(
        client, INQUIRY, {"customer_code": customer.code}, timestamp=int(time.time()) + offset
    )
    assert response.status_code == 200


@pytest.mark.parametrize("stamp", ["", "1.7e9", "-1", " 17642 ", "1764209702.5", "abc"])
def test_it_rejects_a_timestamp_that_is_not_plain_unix_seconds(client, stamp):
    body = encode({"customer_code": "PA14HT0000001"})
    headers = {
        "X-Partner-Code": "VCB",
        "X-Timestamp": stamp,
        "X-Signature": signing.sign(VCB_SECRET, stamp.strip(), "POST", INQUIRY, body),
    }
    assert post(client, INQUIRY, body, headers).status_code == 401


def test_it_rejects_an_unknown_partner(client):
    response = signed_post(client, INQUIRY, {"customer_code": "PA14HT0000001"}, partner="NOPE")
    message = _refused(response, reason="unknown_partner")
    assert message.partner is None and message.signature_valid is None


def test_it_rejects_a_disabled_partner_even_with_a_good_signature(client):
    Partner.objects.filter(code="VCB").update(enabled=False)
    response = signed_post(client, INQUIRY, {"customer_code": "PA14HT0000001"})
    message = _refused(response, reason="partner_disabled")
    assert message.partner.code == "VCB"


def test_it_rejects_a_partner_without_a_secret(client):
    # ACB collects, but no PARTNER_ACB_SECRET is configured: it is not usable.
    response = signed_post(
        client, INQUIRY, {"customer_code": "PA14HT0000001"}, partner="ACB", secret=""
    )
    _refused(response, reason="partner_not_configured")


def test_it_rejects_a_partner_that_does_not_collect(client, settings):
    settings.PARTNER_CREDENTIALS = {"COUNTER": {"secret": "counter-secret"}}
    response = signed_post(
        client,
        INQUIRY,
        {"customer_code": "PA14HT0000001"},
        partner="COUNTER",
        secret="counter-secret",
    )
    _refused(response, reason="partner_does_not_collect")


def test_unknown_disabled_and_unconfigured_partners_get_the_same_message(client):
    unknown = signed_post(client, INQUIRY, {}, partner="NOPE").json()["error"]["message"]
    unconfigured = signed_post(client, INQUIRY, {}, partner="ACB").json()["error"]["message"]
    Partner.objects.filter(code="VCB").update(enabled=False)
    disabled = signed_post(client, INQUIRY, {}).json()["error"]["message"]
    assert unknown == unconfigured == disabled


@pytest.mark.parametrize("missing", ["X-Partner-Code", "X-Timestamp", "X-Signature"])
def test_it_rejects_a_request_without_one_of_the_headers(client, missing):
    body = encode({"customer_code": "PA14HT0000001"})
    headers = signed_headers(body, REVERSALS)
    del headers[missing]
    response = post(client, REVERSALS, body, headers)
    message = _refused(response, reason="missing_headers")
    assert message.kind == InboundMessage.Kind.REVERSAL
    assert missing in response.json()["error"]["fields"]


def test_it_rejects_a_request_from_an_address_the_partner_did_not_allow(client, settings):
    settings.PARTNER_CREDENTIALS = {
        "VCB": {"secret": VCB_SECRET, "allowed_ips": "203.0.113.0/28, 198.51.100.7"}
    }
    customer, _ = customer_with_bills(unpaid=1)
    body = {"customer_code": customer.code}
    refused = signed_post(client, INQUIRY, body, REMOTE_ADDR="192.0.2.10")
    message = _refused(refused, reason="address_not_allowed")
    assert message.headers["Remote-Addr"] == "192.0.2.10"
    assert signed_post(client, INQUIRY, body, REMOTE_ADDR="203.0.113.9").status_code == 200
    assert signed_post(client, INQUIRY, body, REMOTE_ADDR="198.51.100.7").status_code == 200


def test_the_allowed_networks_are_compared_as_addresses_ipv4_and_ipv6(client, settings):
    settings.PARTNER_CREDENTIALS = {
        "VCB": {
            "secret": VCB_SECRET,
            "allowed_ips": "203.0.113.0/28, not-an-address, 2001:db8::/32",
        }
    }
    body = {"customer_code": "PA14HT0000001"}
    # 404: authenticated, and the customer simply does not exist.
    for inside in ("203.0.113.9", "::ffff:203.0.113.9", "2001:db8:0:0::42"):
        assert signed_post(client, INQUIRY, body, REMOTE_ADDR=inside).status_code == 404, inside
    outside = signed_post(client, INQUIRY, body, REMOTE_ADDR="203.0.113.16")
    _refused(outside, reason="address_not_allowed")


def test_a_list_of_unreadable_entries_admits_nobody(client, settings, caplog):
    settings.PARTNER_CREDENTIALS = {"VCB": {"secret": VCB_SECRET, "allowed_ips": "*, 10.0.0.0/40"}}
    refused = signed_post(client, INQUIRY, {"customer_code": "PA14HT0000001"})
    _refused(refused, reason="address_not_allowed")
    warned = [r for r in caplog.records if "PARTNER_VCB_ALLOWED_IPS" in r.getMessage()]
    assert {r.levelname for r in warned} == {"WARNING"} and len(warned) == 2


def test_the_allowed_address_is_the_client_behind_the_trusted_proxy(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.PARTNER_CREDENTIALS = {"VCB": {"secret": VCB_SECRET, "allowed_ips": "203.0.113.9"}}
    body = {"customer_code": "PA14HT0000001"}
    allowed = signed_post(
        client, INQUIRY, body, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9"
    )
    assert allowed.status_code == 404  # authenticated; the customer simply does not exist
    spoofed = signed_post(
        client,
        INQUIRY,
        body,
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="203.0.113.9, 192.0.2.66",
    )
    assert spoofed.status_code == 401


def test_a_wrong_signature_says_nothing_about_the_clock_or_the_address(client, settings):
    settings.PARTNER_CREDENTIALS = {"VCB": {"secret": VCB_SECRET, "allowed_ips": "203.0.113.9"}}
    response = signed_post(
        client,
        INQUIRY,
        {},
        secret="guess",
        timestamp=int(time.time()) - 9999,
        REMOTE_ADDR="192.0.2.1",
    )
    _refused(response, reason="invalid_signature")


def test_a_refused_request_never_takes_the_key_of_a_real_one(client):
    customer, bills = customer_with_bills(unpaid=1)
    body = encode(notice(customer, bills, "VCB-FORGED"))
    good = signed_headers(body, PAYMENTS)
    forged = post(client, PAYMENTS, body, {**good, "X-Signature": "0" * 64})
    assert forged.status_code == 401
    real = post(client, PAYMENTS, body, good)
    assert real.status_code == 201, real.content


def test_verify_refuses_a_replay_once_its_timestamp_is_stale():
    body = encode({"customer_code": "PA14HT0000001"})
    headers = signed_headers(body, INQUIRY)
    request = RequestFactory().post(
        INQUIRY, data=body, content_type="application/json", headers=headers
    )
    sent = int(headers["X-Timestamp"])
    assert auth.verify(request, now=sent + 300).partner.code == "VCB"
    with pytest.raises(auth.Unauthorized) as refused:
        auth.verify(request, now=sent + 301)
    assert refused.value.reason == "stale_timestamp"


def test_the_api_refuses_other_methods_after_authentication(client):
    unsigned = client.get(INQUIRY)
    assert unsigned.status_code == 401
    headers = signed_headers(b"", INQUIRY, method="GET")
    signed = client.get(INQUIRY, headers=headers)
    assert signed.status_code == 405
    assert signed.json()["error"]["code"] == "method_not_allowed"
