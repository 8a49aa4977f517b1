"""Receiving a partner's notification: finding the payment it names with its partner in one
query, and inbox keys that cannot be forged into a genuine message's."""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection

from payments import inbox
from payments.inbox import Applied
from payments.models import InboundMessage, Partner, Payment

logger = logging.getLogger(__name__)
Outcome = InboundMessage.Outcome

PARTNER_CODE = re.compile(r"[A-Z0-9]{1,20}")
# Wider than our references (`payments.references`), so a partner's junk is still "not found".
REFERENCE = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def safe_key(text: str, length: int) -> str:
    """`text` cut to `length`, with anything but letters, digits and `_.-` made `_`."""
    return _UNSAFE_KEY_CHARS.sub("_", text)[:length]


@dataclass(frozen=True)
class Named:
    """What answering a notification needs of the payment it names: read with its partner."""

    pk: Any
    amount: int
    status: str
    partner: Partner


def payment_named(reference: str, *, protocol: str, code: str | None = None) -> Named | None:
    """The redirect payment a notification names, with its partner (of this protocol, and this
    code when given): one query for both, written out because building it with the ORM cost
    more than running it, on every notification."""
    if not REFERENCE.fullmatch(reference) or (
        code is not None and not PARTNER_CODE.fullmatch(code)
    ):
        return None
    sql = (
        "SELECT p.id, p.amount, p.status, pa.id, pa.code, pa.name, pa.kind, pa.enabled "
        "FROM payments_payment p JOIN payments_partner pa ON pa.id = p.partner_id "
        "WHERE p.reference = %s AND p.method = %s AND pa.offers_redirect "
        "AND pa.redirect_protocol = %s"
    )
    params: list[Any] = [reference, Payment.Method.REDIRECT, protocol]
    if code is not None:
        sql += " AND pa.code = %s"
        params.append(code)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    pk, amount, status, partner_id, partner_code, name, kind, enabled = row
    partner = Partner(
        id=partner_id,
        code=partner_code,
        name=name,
        kind=kind,
        enabled=enabled,
        offers_redirect=True,
        redirect_protocol=protocol,
    )
    return Named(pk, amount, status, partner)


def partners_speaking(protocol: str) -> list[Partner]:
    """The partners whose payment page speaks this protocol."""
    return list(Partner.objects.filter(offers_redirect=True, redirect_protocol=protocol))


class Receipt(enum.Enum):
    """What became of a notification the web received (`notification_receive`)."""

    FORGED = "forged"  # the signature did not verify (or no partner to verify it): refused
    UNLISTED = "unlisted"  # genuine, from an address outside PARTNER_<CODE>_ALLOWED_IPS
    NEW = "new"  # stored by this request: the first of its kind
    REPEAT = "repeat"  # stored before: a repeat of the first


def notification_receive(
    *,
    code: str,
    raw: str,
    identity: Sequence[str],
    signature: str,
    partner: Partner | None,
    genuine: bool,
    payment_id: Any,
    unmatched: Applied | None,
    headers: Mapping[str, str],
    remote_addr: str,
    answer: tuple[int, Any],
    refusal: tuple[int, Any],
) -> Receipt:
    """Store a wallet's notification in the inbox (kind IPN) with the answer it gets, and wake
    an applier: one query for a genuine one, after the one that found its payment.

    `identity` is what makes it one outcome of one transaction: its dedupe key, so the partner's
    retries are stored once. A message whose signature failed is kept under a key of its own,
    built from its signature (`ipn-bad:`), which can never be a genuine message's: a forger
    cannot make the real one look like a repeat. `unmatched` stores a message that names no
    payment of ours already processed, so no applier takes it. Database errors propagate: the
    view answers so that the partner retries.
    """
    kept = inbox.keep_headers(headers, remote_addr)
    partner_id = partner.pk if partner is not None else None
    prefix = safe_key(code, 20)
    if partner is None or not genuine:
        inbox.inbox_refuse(
            kind=InboundMessage.Kind.IPN,
            dedupe_key=f"ipn-bad:{prefix}:{safe_key(signature or 'none', 128)}:"
            f"{inbox.fingerprint(raw)[:32]}",
            body=raw,
            address=remote_addr,
            refusal=Applied(
                Outcome.INVALID_SIGNATURE, "the signature did not verify; nothing applied"
            ),
            partner_id=partner_id,
            headers=kept,
            signature_valid=False,
            response=refusal,
        )
        return Receipt.FORGED
    if not partner.address_allowed(remote_addr):
        # A genuine signature from an address we do not know: keep it, apply nothing, and let
        # the partner retry while someone updates PARTNER_<CODE>_ALLOWED_IPS.
        logger.warning("notification for %s from unlisted address %s", partner.code, remote_addr)
        inbox.inbox_refuse(
            kind=InboundMessage.Kind.IPN,
            dedupe_key=f"ipn-bad:{prefix}:{safe_key(signature or 'none', 128)}:"
            f"{inbox.fingerprint(raw, remote_addr)[:32]}",
            body=raw,
            address=remote_addr,
            refusal=Applied(Outcome.ADDRESS_NOT_ALLOWED, remote_addr),
            partner_id=partner_id,
            headers=kept,
            signature_valid=True,
        )
        return Receipt.UNLISTED
    reference = safe_key(identity[0] if identity else "", 40)
    message_id = inbox.inbox_receive(
        kind=InboundMessage.Kind.IPN,
        dedupe_key=f"ipn:{prefix}:{reference}:{inbox.fingerprint(*identity)[:40]}",
        body=raw,
        partner_id=partner_id,
        headers=kept,
        signature_valid=True,
        payment_id=payment_id,
        processed=unmatched,
        response=answer,
    )
    if message_id is None:
        return Receipt.REPEAT
    if unmatched is None:
        # A broker outage only delays this: the inbox sweeper wakes an applier again.
        inbox.inbox_wake()
    return Receipt.NEW
