"""Which channel serves a partner's payment page, by its protocol (`Partner.redirect_protocol`):
VNPay 2.1.0 for banks and intermediaries, MoMo's and ZaloPay's own for their wallets.

Every such channel answers the same questions (`PageChannel`): is the partner configured, start
a payment (its checkout), read a stored notification or status answer into a report, ask how a
payment ended, and verify what the browser brings back. Everything else is shared: the inbox,
the applier, `reports.apply_reports` and the one settle function behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from payments.channels.common import reports
from payments.channels.common.pages import Checkout, NotConfigured, ReturnReport
from payments.channels.common.receiving import PARTNER_CODE
from payments.channels.momo import channel as momo
from payments.channels.vnpay import gateway as vnpay
from payments.channels.zalopay import channel as zalopay
from payments.inbox import Applied, Claimed
from payments.models import InboundMessage, Partner, Payment

Outcome = InboundMessage.Outcome


class PageChannel(Protocol):
    # Whether `start` calls the partner (a wallet's create call): it must then run outside any
    # database transaction. A bank's page is only signed.
    START_CALLS_PARTNER: bool

    def configured(self, partner: Partner) -> bool: ...

    def start(
        self, payment: Payment, *, client_ip: str, locale: str, phone: bool = False
    ) -> Checkout: ...

    def read(self, message: Claimed, partner: Partner | None) -> reports.Report | Applied: ...

    def ask(self, payment: Payment, *, now: datetime) -> reports.Answer | None: ...

    def return_verify(self, *, partner: Partner, params: Mapping[str, str]) -> ReturnReport: ...


CHANNELS: dict[str, PageChannel] = {
    Partner.Protocol.VNPAY: vnpay,
    Partner.Protocol.MOMO: momo,
    Partner.Protocol.ZALOPAY: zalopay,
}


def channel_for(partner: Partner) -> PageChannel:
    """The channel of the partner's payment page; NotConfigured when it offers none."""
    channel = CHANNELS.get(partner.redirect_protocol) if partner.offers_redirect else None
    if channel is None:
        raise NotConfigured(f"{partner.code} offers no payment page")
    return channel


def offered(partner: Partner) -> bool:
    """Whether households may be sent to the partner's page: enabled, and configured in this
    process's environment with everything its protocol needs."""
    if not (partner.offers_redirect and partner.enabled and partner.is_usable):
        return False
    channel = CHANNELS.get(partner.redirect_protocol)
    return channel is not None and channel.configured(partner)


def start_calls_partner(partner: Partner) -> bool:
    return channel_for(partner).START_CALLS_PARTNER


def page_partner(code: str) -> Partner | None:
    """The partner offering a payment page named in a URL (any protocol), or None."""
    code = code.strip().upper()
    if not PARTNER_CODE.fullmatch(code):
        return None
    return Partner.objects.filter(code=code, offers_redirect=True).first()


def start(payment: Payment, *, client_ip: str, locale: str, phone: bool = False) -> Checkout:
    """Start a redirect payment on its partner's page: see `PageChannel.start`."""
    if payment.partner is None:
        raise NotConfigured("a redirect payment needs a partner")
    return channel_for(payment.partner).start(
        payment, client_ip=client_ip, locale=locale, phone=phone
    )


def read(message: Claimed, partner: Partner | None) -> reports.Report | Applied:
    channel = CHANNELS.get(partner.redirect_protocol) if partner is not None else None
    if partner is None or channel is None:
        return Applied(Outcome.INVALID_SIGNATURE, "no partner's page to read it with")
    return channel.read(message, partner)


def apply_reports(messages: Sequence[Claimed]) -> dict[int, Applied]:
    """The applier's channel for notifications and status answers of every payment page: each
    is read by its partner's protocol, then all go through `reports.apply_reports` together."""
    return reports.apply_reports(messages, read)
