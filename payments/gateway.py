"""Bank redirect payments over the VNPay 2.1.0 protocol: the Django side of `providers.vnpay`."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from payments.models import Partner, Payment
from payments.providers import vnpay


class GatewayNotConfigured(Exception):
    pass


def gateway_config(partner: Partner) -> vnpay.GatewayConfig:
    credentials = partner.credentials
    missing = [name for name in ("secret", "tmn_code", "pay_url") if not credentials.get(name)]
    if missing:
        raise GatewayNotConfigured(f"{partner.code}: set PARTNER_{partner.code}_* ({missing})")
    return vnpay.GatewayConfig(
        tmn_code=credentials["tmn_code"],
        secret=credentials["secret"],
        pay_url=credentials["pay_url"],
        api_url=credentials.get("api_url", ""),
    )


def order_info(payment: Payment) -> str:
    # ASCII only: some banks mangle anything else in the order description.
    return f"Thanh toan tien dien {payment.customer.code} {payment.reference}"


def payment_start_redirect(payment: Payment, *, client_ip: str, locale: str) -> str:
    """Sign the pay URL for a pending redirect payment and remember what querydr must repeat."""
    if payment.partner is None or payment.expires_at is None:
        raise GatewayNotConfigured("a redirect payment needs a partner and an expiry time")
    config = gateway_config(payment.partner)
    return_url = settings.PORTAL_BASE_URL + reverse("pay-return", args=[payment.partner.code])
    url = vnpay.build_pay_url(
        config,
        txn_ref=payment.reference,
        amount=payment.amount,
        order_info=order_info(payment),
        return_url=return_url,
        ip_address=client_ip or "127.0.0.1",
        created_at=payment.created_at,
        expires_at=payment.expires_at,
        locale="en" if locale == "en" else "vn",
    )
    payment.provider_data = {
        **payment.provider_data,
        "vnp_CreateDate": vnpay.format_time(payment.created_at),
        "vnp_OrderInfo": order_info(payment),
        "redirect_url": url,
    }
    payment.save(update_fields=["provider_data", "updated_at"])
    return url


def payment_request_poll(*, payment_id: object) -> None:
    """Ask a worker to query the bank about this payment now (after the current commit)."""
    from payments import tasks
    from payments.queue import enqueue_after_commit

    enqueue_after_commit(tasks.poll_gateway_payment, str(payment_id))
