"""Hostile input: generated requests against the OpenAPI schemas and the bank callbacks.

schemathesis generates requests from the two published schemas (the public API at /api/schema/
and the collection API at /api/v1/collection/schema/), valid and invalid, and sends them over
HTTP to a gunicorn serving the portal with DEBUG off; hypothesis generates gateway notifications
and transfer webhooks (through Django's test client: hundreds of them in seconds). Never a 5xx,
and invalid input changes nothing (rows counted before and after each request). Every test ends
with `check_integrity`.
"""

from __future__ import annotations

import collections
import json
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
import schemathesis
from django.conf import settings as django_settings
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from customers.models import Bill
from payments import services
from payments.channels.collection.signing import sign
from payments.channels.transfers import notifications
from payments.models import (
    BankTransfer,
    IdempotencyKey,
    InboundMessage,
    Payment,
    PaymentBill,
    PaymentEvent,
)
from tests.factories import customer_with_bills
from tests.reliability import books, support, traffic
from tests.reliability.support import Figures
from tests.sandbox.support import bank_message, redirect_payment

pytestmark = pytest.mark.slow

EXAMPLES = 40  # per operation and mode: bounded, and enough to find the easy ways in
# Whether answers match the schema. Left out: positive_data_acceptance, since the schemas
# describe customer codes as plain strings while the server (rightly) refuses malformed ones
# with the documented 400 `invalid_customer_code`.
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
WEBHOOK_KEY = "hostile-webhook-key-8c0e55"


def _state() -> dict[str, int]:
    """What invalid input must never change. Inbox rows may be added (refused requests are kept
    on purpose), but none may be left waiting for a worker."""
    return {
        "payments": Payment.objects.count(),
        "payment lines applied": PaymentBill.objects.filter(applied=True).count(),
        "paid bills": Bill.objects.filter(status=Bill.Status.PAID).count(),
        "events": PaymentEvent.objects.count(),
        "transfers": BankTransfer.objects.count(),
        "idempotency keys": IdempotencyKey.objects.count(),
        "messages waiting for a worker": InboundMessage.objects.filter(
            processed_at__isnull=True
        ).count(),
    }


@pytest.fixture
def hostile_settings(settings: Any) -> Any:
    settings.TRANSFER_WEBHOOK_API_KEY = WEBHOOK_KEY
    return settings


def _known_data() -> dict[str, Any]:
    """Rows the generated requests can hit: the schemas' example customer, with bills and a
    pending payment, so valid requests reach the code behind the validation."""
    customer, bills = customer_with_bills(unpaid=3, code="PA14HT0012345")
    payment = services.payment_start(
        customer_code=customer.code, method="vietqr", bill_numbers=[bills[0].number]
    ).payment
    return {"customer": customer, "bills": bills, "payment": payment}


def _hypothesis(examples: int) -> Any:
    return hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same run every time: CI failures reproduce
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )


def _send(case: Any, base_url: str, *, sign_as: str | None = None) -> requests.Response:
    kwargs = case.as_transport_kwargs(base_url=base_url)
    kwargs.setdefault("headers", {})
    if sign_as:
        if "json" in kwargs:
            kwargs["data"] = json.dumps(kwargs.pop("json")).encode("utf-8")
            kwargs["headers"]["Content-Type"] = "application/json"
        body = kwargs.get("data") or b""
        body = body if isinstance(body, bytes) else str(body).encode("utf-8")
        stamp = str(int(time.time()))
        method, path = str(kwargs["method"]).upper(), urlsplit(kwargs["url"]).path
        kwargs["data"] = body
        kwargs["headers"].update(
            {
                "X-Partner-Code": sign_as,
                "X-Timestamp": stamp,
                "X-Signature": sign(support.VCB_SECRET, stamp, method, path, body),
            }
        )
    kwargs.setdefault("timeout", 30)
    return traffic.session().request(**kwargs)


def _bad_headers(case: Any) -> bool:
    return bool(case.meta and case.meta.is_negative_at(ParameterLocation.HEADER))


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    *,
    signed: bool,
    statuses: collections.Counter,
    known_payment: Any = None,
) -> bool:
    """Send generated requests of one mode to one operation; False when none can be made."""

    strategy = operation.as_strategy(generation_mode=mode)
    if mode is GenerationMode.POSITIVE:
        # The schema's own examples, and the known payment in paths, reach past validation.
        extra = operation.schema.get_strategies_from_examples(operation)
        if "{payment_id}" in operation.path:
            extra.append(
                operation.as_strategy(mode, path_parameters={"payment_id": str(known_payment)})
            )
        strategy = st.one_of(strategy, *extra)

    @_hypothesis(EXAMPLES)
    @given(case=strategy, signs=st.booleans())
    def run(case: Any, signs: bool) -> None:
        before = _state()
        # A partner signs its requests, unless the case is about broken headers: those are
        # sent as generated (and refused 401).
        sign_as = "VCB" if signed and signs and not _bad_headers(case) else None
        response = _send(case, base_url, sign_as=sign_as)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (case, response.status_code, response.text)
        if mode is GenerationMode.NEGATIVE or response.status_code >= 400:
            assert _state() == before, (case, response.status_code, response.text)
        # The answer is one the schema documents (status, shape, content type, headers), and
        # invalid input is refused with a 4xx.
        checks = CONFORMANCE + (
            [negative_data_rejection] if mode is GenerationMode.NEGATIVE else []
        )
        case.validate_response(response, checks=checks)

    try:
        run()
    except Unsatisfiable:
        # Nothing in this operation's schema can be made invalid (e.g. a path holding any
        # string): there is no negative request to send.
        return False
    return True


def _fuzz_schema(
    schema_path: str, base_url: str, *, signed: bool, figures: Figures, known_payment: Any = None
) -> collections.Counter:
    """Every operation of the schema, valid and invalid requests; returns status counts."""
    schema = schemathesis.openapi.from_url(base_url + schema_path)
    statuses: collections.Counter = collections.Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, f"no operation in {schema_path}"
    not_generated = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if not _fuzz_operation(
                operation,
                mode,
                base_url,
                signed=signed,
                statuses=statuses,
                known_payment=known_payment,
            ):
                not_generated.append(f"{operation.label} ({mode.value})")
    figures.set(
        operations=[operation.label for operation in operations],
        modes_with_nothing_to_generate=not_generated,
    )
    # Valid requests can always be made; only a schema with nothing to break may lack invalid.
    assert not [label for label in not_generated if "positive" in label], not_generated
    assert any(200 <= code < 300 for code in statuses), statuses  # some request got through
    return statuses


def test_schemathesis_over_the_public_api_finds_no_5xx_and_no_change_from_invalid_input(
    portal_stack,
):
    figures = Figures("schemathesis_public", "schemathesis over the public API (/api/schema/)")
    web = portal_stack.start_web()
    known = _known_data()
    statuses = _fuzz_schema(
        "/api/schema/",
        web.url,
        signed=False,
        figures=figures,
        known_payment=known["payment"].pk,
    )
    _close_fuzz_books(figures, statuses)


def _close_fuzz_books(figures: Figures, statuses: collections.Counter) -> None:
    """The books after a fuzzing run: every message a request left in the inbox was processed
    (none lost), nothing applied twice."""
    lost = books.unprocessed()
    books.close_books(
        figures,
        messages_sent=sum(statuses.values()),
        duplicates=0,
        faults_injected=0,
        server_errors=sum(n for code, n in statuses.items() if code >= 500),
        statuses={str(code): n for code, n in sorted(statuses.items())},
        lost=lost,
        doubled=books.doubled(),
    )
    assert lost == 0


def test_schemathesis_over_the_collection_api_signed_and_unsigned(portal_stack):
    figures = Figures(
        "schemathesis_collection", "schemathesis over the collection API, signed and unsigned"
    )
    web = portal_stack.start_web()
    _known_data()
    statuses = _fuzz_schema("/api/v1/collection/schema/", web.url, signed=True, figures=figures)
    assert statuses[401] and len(statuses) > 2  # both refused and signed requests were made
    _close_fuzz_books(figures, statuses)


# --- The callbacks ------------------------------------------------------------------------------------
VNP_FIELDS = (
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_BankTranNo",
    "vnp_CardType",
    "vnp_OrderInfo",
    "vnp_PayDate",
    "vnp_ResponseCode",
    "vnp_TmnCode",
    "vnp_TransactionNo",
    "vnp_TransactionStatus",
    "vnp_TxnRef",
    "vnp_SecureHash",
)
_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60)
_junk_values = st.one_of(
    _text,
    st.from_regex(r"[0-9]{0,20}", fullmatch=True),
    st.sampled_from(["", "0", "-1", "00", "1e3", "NaN", "%00", "\x00", "' OR 1=1 --", "9" * 40]),
)


@pytest.mark.django_db
def test_hypothesis_over_the_ipn_finds_no_5xx_and_no_change_from_forged_messages(
    client, hostile_settings
):
    """Random query strings, and genuine messages with one value changed after signing: always
    a protocol answer (97 for anything not signed by the bank), never a change to a payment."""
    figures = Figures("hypothesis_ipn", "hypothesis over the gateway notification (IPN)")
    payment = redirect_payment(amounts=[452_160])
    # Signed with the live server's own secret: genuine until one value is changed.
    genuine = bank_message(payment, transaction_no="31337")
    answers: collections.Counter = collections.Counter()
    url = "/callbacks/SANDBOX/ipn/"
    secret = django_settings.PARTNER_CREDENTIALS["SANDBOX"]["secret"]

    def check(params: Any, query: str | None = None) -> None:
        before = _state()
        target = f"{url}?{query if query is not None else urlencode(params, doseq=True)}"
        response = client.get(target)
        assert response.status_code == 200, (params, response.status_code)
        code = response.json()["RspCode"]
        answers[code] += 1
        assert code == "97", (params, code)  # nothing here carries the bank's signature
        assert _state() == before

    @_hypothesis(100)
    @given(
        st.dictionaries(st.one_of(st.sampled_from(VNP_FIELDS), _text), _junk_values, max_size=14)
    )
    def random_messages(params: dict[str, str]) -> None:
        check(params)

    @_hypothesis(100)
    @given(st.sampled_from([f for f in VNP_FIELDS if f != "vnp_SecureHash"]), _junk_values)
    def tampered(field: str, value: str) -> None:
        if genuine.get(field) == value:
            return
        check({**genuine, field: value})

    @_hypothesis(40)
    @given(st.binary(max_size=300))
    def raw_bytes(raw: bytes) -> None:
        check(None, query="vnp_TxnRef=" + payment.reference + "&" + raw.hex() + "=%FF%00")

    @_hypothesis(20)
    @given(st.sampled_from([f for f in VNP_FIELDS if f != "vnp_SecureHash"]), _junk_values)
    def signed_with_another_secret(field: str, value: str) -> None:
        check(traffic.ipn_params(payment, transaction_no="31337", **{field: value}))

    # This suite's own secret is not the live server's: a message signed with it is forged.
    assert secret != support.SANDBOX_SECRET
    random_messages()
    tampered()
    raw_bytes()
    signed_with_another_secret()
    # The genuine message still gets through afterwards: nothing forged poisoned it.
    answer = client.get(f"{url}?{urlencode(genuine)}").json()["RspCode"]
    answers[answer] += 1
    assert answer == "00"
    from payments import applier

    for message in InboundMessage.objects.filter(processed_at__isnull=True):
        applier.apply_one(message.pk)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    books.close_books(
        figures,
        messages_sent=sum(answers.values()),
        duplicates=0,
        faults_injected=0,
        server_errors=0,
        answers=dict(answers),
        lost=books.unsettled([payment]),
        doubled=books.doubled(),
    )


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
TRANSFER_FIELDS = (
    "id",
    "gateway",
    "transactionDate",
    "accountNumber",
    "code",
    "content",
    "transferType",
    "transferAmount",
    "accumulated",
    "subAccount",
    "referenceCode",
)


@pytest.mark.django_db
def test_hypothesis_over_the_transfer_webhook_finds_no_5xx_and_no_change_from_invalid_bodies(
    client, hostile_settings
):
    """Random JSON, random bodies, and a valid notification with one field made invalid: 400
    (or 401 without the key), nothing stored. Valid ones are stored once and answered 200."""
    figures = Figures("hypothesis_transfers", "hypothesis over the transfer webhook")
    customer, _bills = customer_with_bills(unpaid=1)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    statuses: collections.Counter = collections.Counter()
    url = "/callbacks/transfers/"

    def post(body: bytes, *, key: str = WEBHOOK_KEY, expected: tuple[int, ...] = (200, 400)) -> int:
        before, messages = _state(), InboundMessage.objects.count()
        response = client.post(
            url,
            data=body,
            content_type="application/json",
            headers={"Authorization": f"Apikey {key}"},
        )
        statuses[response.status_code] += 1
        assert response.status_code in expected, (body[:200], response.status_code)
        if response.status_code != 200:
            assert response.json()["error"]["code"]  # the contract's error shape
            assert (_state(), InboundMessage.objects.count()) == (before, messages)
        return response.status_code

    @_hypothesis(100)
    @given(_json_values)
    def random_json(value: Any) -> None:
        post(json.dumps(value).encode(), expected=(400,))

    @_hypothesis(40)
    @given(st.binary(max_size=400))
    def random_bytes(raw: bytes) -> None:
        post(raw, expected=(400,))

    @_hypothesis(120)
    @given(st.sampled_from(TRANSFER_FIELDS), _json_values)
    def one_field_broken(field: str, value: Any) -> None:
        body = traffic.transfer_body(payment, sender_id=900_000_001, **{field: value})
        status = post(json.dumps(body).encode())
        if status == 200:
            # Still a valid notification (e.g. another note): stored once, however often sent,
            # under the sender's id as the webhook reads it (an id of 1.0 is the id 1).
            sender_id, _credit = notifications.credit_from_notification(body)
            assert InboundMessage.objects.filter(dedupe_key=f"transfer:{sender_id}").count() == 1

    @_hypothesis(30)
    @given(st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60))
    def wrong_key(key: str) -> None:
        if key.strip() != WEBHOOK_KEY:
            post(json.dumps(traffic.transfer_body(payment)).encode(), key=key, expected=(401,))

    random_json()
    random_bytes()
    one_field_broken()
    wrong_key()
    assert statuses[200], "no valid notification was ever sent"
    # Whatever was accepted is applied by the worker once and the books still add up.
    from payments import applier

    for message in InboundMessage.objects.filter(processed_at__isnull=True):
        applier.apply_one(message.pk)
    _close_fuzz_books(figures, statuses)
