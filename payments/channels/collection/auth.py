r"""Who is calling the collection API: a partner proving itself with an HMAC signature.

Checks, in this order (the first that fails answers 401 in the contract's error shape):
1. the three headers are present;
2. the partner exists, is enabled, collects bills (`collects`) and is usable (its secret is set
   in the environment); these failures share one message, so a caller without a secret learns
   nothing about which partners are configured;
3. the signature over `"{X-Timestamp}\n{METHOD}\n{path}\n{raw body}"` matches, compared in
   constant time (the method and path are this request's, so a body signed for one operation is
   refused by the others);
4. the timestamp is within ±300 s of our clock;
5. the request comes from one of the partner's allowed addresses, when any are configured
   (`PARTNER_<CODE>_ALLOWED_IPS`; single addresses or networks, comma-separated).
The signature is checked before the clock and the address, so only a caller holding the secret
learns why a request was refused in detail.

Every refused request is kept in the inbox (under a key of its own, so a forged request can never
take the place of a real one) with the answer it got, as `payments.inbox.inbox_refuse` keeps
refusals: cut short, so many per client address, purged after a while.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import status
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from common.api import ApiError, error_body
from common.ratelimit import client_address
from payments.channels.collection import signing
from payments.inbox import Applied, inbox_refuse, keep_headers
from payments.models import InboundMessage, Partner

logger = logging.getLogger(__name__)

PARTNER_HEADER = "X-Partner-Code"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"
WWW_AUTHENTICATE = 'HMAC-SHA256 realm="collection", headers="X-Partner-Code X-Timestamp"'


@dataclass(frozen=True)
class PartnerCaller:
    """An authenticated partner and the exact request it signed (DRF's `request.auth`)."""

    partner: Partner
    timestamp: str
    signature: str
    body: bytes
    address: str
    # DRF permission classes and Django read these on `request.user`.
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def body_text(self) -> str:
        return body_as_text(self.body)

    def headers_for_inbox(self, request: HttpRequest) -> dict[str, str]:
        kept = keep_headers(request.headers, remote_addr=self.address)
        # The signature is no secret (it is a MAC of this very request) and shows which request
        # a support ticket is about.
        kept[SIGNATURE_HEADER] = self.signature
        return kept


def body_as_text(body: bytes) -> str:
    """A body as the inbox keeps it: text, with NUL (which PostgreSQL text refuses) replaced."""
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


class Unauthorized(Exception):
    def __init__(self, reason: str, message: str, *, partner: Partner | None = None,
                 signature_valid: bool | None = None, header: str = "") -> None:  # fmt: skip
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.partner = partner
        self.signature_valid = signature_valid
        self.header = header


def verify(request: HttpRequest, *, now: float | None = None) -> PartnerCaller:
    """Check a collection request's credentials; raises Unauthorized with the reason."""
    code = request.headers.get(PARTNER_HEADER, "").strip().upper()
    timestamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
    signature = request.headers.get(SIGNATURE_HEADER, "").strip()
    missing = [
        name
        for name, value in (
            (PARTNER_HEADER, code),
            (TIMESTAMP_HEADER, timestamp),
            (SIGNATURE_HEADER, signature),
        )
        if not value
    ]
    if missing:
        raise Unauthorized(
            "missing_headers",
            _("Sign the request: the headers %(headers)s are required.")
            % {"headers": ", ".join(missing)},
            header=missing[0],
        )
    partner = Partner.objects.filter(code=code[:20]).first()
    # Its secret signs the calls: a partner configured with a wallet's keys only has none.
    configured = partner is not None and partner.is_usable and bool(partner.secret)
    if partner is None or not (partner.enabled and partner.collects and configured):
        reason = (
            "unknown_partner"
            if partner is None
            else "partner_disabled"
            if not partner.enabled
            else "partner_does_not_collect"
            if not partner.collects
            else "partner_not_configured"
        )
        raise Unauthorized(
            reason,
            _("This partner may not use the collection API."),
            partner=partner,
            header=PARTNER_HEADER,
        )
    body = request.body
    if not signing.signature_matches(
        partner.secret, timestamp, request.method or "", request.path, body, signature
    ):
        raise Unauthorized(
            "invalid_signature",
            _("The signature does not match this request."),
            partner=partner,
            signature_valid=False,
            header=SIGNATURE_HEADER,
        )
    seconds = signing.parse_timestamp(timestamp)
    current = time.time() if now is None else now
    if seconds is None or not signing.timestamp_is_fresh(seconds, current):
        raise Unauthorized(
            "stale_timestamp",
            _(
                "X-Timestamp must be the current Unix time in seconds (within %(seconds)s "
                "seconds of ours); check the sending server's clock."
            )
            % {"seconds": signing.TOLERANCE_SECONDS},
            partner=partner,
            signature_valid=True,
            header=TIMESTAMP_HEADER,
        )
    address = client_address(request)
    if not partner.address_allowed(address):
        raise Unauthorized(
            "address_not_allowed",
            _("Requests for this partner are not accepted from this address."),
            partner=partner,
            signature_valid=True,
        )
    return PartnerCaller(
        partner=partner, timestamp=timestamp, signature=signature, body=body, address=address
    )


def record_rejection(request: HttpRequest, *, kind: str, exc: Unauthorized) -> ApiError:
    """Keep a refused request and its answer in the inbox; returns the error to raise."""
    fields = {exc.header: [exc.message]} if exc.header else {}
    answer = error_body("unauthorized", exc.message, fields)
    address = client_address(request)
    headers = keep_headers(request.headers, remote_addr=address)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if signature:
        headers[SIGNATURE_HEADER] = signature
    message_id = inbox_refuse(
        kind=kind,
        # Random, never derived from the request: a forged copy must not claim a real request's key.
        dedupe_key=f"collection:rejected:{uuid.uuid4().hex}",
        body=body_as_text(request.body),
        address=address,
        refusal=Applied(InboundMessage.Outcome.UNAUTHORIZED, exc.reason),
        partner_id=exc.partner.pk if exc.partner else None,
        headers=headers,
        signature_valid=exc.signature_valid,
        response=(status.HTTP_401_UNAUTHORIZED, answer),
    )
    logger.info(
        "collection request refused: %s (partner %s, message %s)",
        exc.reason,
        exc.partner.code if exc.partner else "-",
        message_id or "not kept",
    )
    return ApiError(
        "unauthorized",
        exc.message,
        status_code=status.HTTP_401_UNAUTHORIZED,
        fields=fields,
        headers={"WWW-Authenticate": WWW_AUTHENTICATE},
    )


class PartnerSignatureAuthentication(BaseAuthentication):
    """DRF glue for `verify`: every collection view uses it, and it never lets a request pass
    unauthenticated (no headers is a 401 too, not an anonymous user)."""

    def authenticate(self, request: Request) -> tuple[PartnerCaller, PartnerCaller]:
        django_request = request._request
        view = (request.parser_context or {}).get("view")
        kind = getattr(view, "inbox_kind", InboundMessage.Kind.INQUIRY)
        try:
            caller = verify(django_request)
        except Unauthorized as exc:
            raise record_rejection(django_request, kind=kind, exc=exc) from None
        return caller, caller

    def authenticate_header(self, request: Request) -> str:
        return WWW_AUTHENTICATE


class PartnerSignatureScheme(OpenApiAuthenticationExtension):
    """The three headers, all required together, in the collection API's OpenAPI document."""

    target_class = "payments.channels.collection.auth.PartnerSignatureAuthentication"
    name = ["PartnerCode", "Timestamp", "Signature"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": PARTNER_HEADER,
                "description": "The partner's code, e.g. `VCB`.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": TIMESTAMP_HEADER,
                "description": "Current Unix time in seconds; refused when more than 300 s "
                "away from the portal's clock.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": SIGNATURE_HEADER,
                "description": "Lower-case hex HMAC-SHA256, keyed with the partner's secret, "
                'of `"{X-Timestamp}\\n{METHOD}\\n{path}\\n{raw request body}"`: METHOD in upper '
                "case, path without host or query string (e.g. `/api/v1/collection/payments/`), "
                "joined by newlines.",
            },
        ]
