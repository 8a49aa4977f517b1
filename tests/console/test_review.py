"""A supervisor clears a payment flagged for review; an agent cannot."""

from __future__ import annotations

import pytest

from payments import services
from payments.models import Payment
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db
IPN = services.Report(source=services.Source.IPN)


def _flagged():
    customer, _ = customer_with_bills(unpaid=1)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    services.payment_mark_succeeded(payment_id=payment.id, report=IPN)
    services.payment_mark_failed(payment_id=payment.id, report=IPN, reason="24")
    return Payment.objects.get(pk=payment.pk)


def test_a_supervisor_marks_a_flagged_payment_reviewed_with_a_note(client, supervisor):
    payment = _flagged()
    assert payment.needs_review
    client.force_login(supervisor)
    url = f"/console/payments/{payment.id}/review/"
    assert client.get(url).status_code == 200
    assert client.post(url, {"reason": ""}).status_code == 400
    response = client.post(url, {"reason": "Ngân hàng xác nhận giao dịch thành công"})
    assert response.status_code == 302
    payment.refresh_from_db()
    assert not payment.needs_review
    assert payment.events.filter(detail__has_key="reviewed").count() == 1
    entry = supervisor.audit_entries.get()
    assert entry.action == "payment_review" and entry.payment_id == payment.id


def test_an_agent_cannot_clear_a_review(client, agent):
    payment = _flagged()
    client.force_login(agent)
    response = client.post(f"/console/payments/{payment.id}/review/", {"reason": "ok"})
    assert response.status_code == 403
    assert Payment.objects.get(pk=payment.pk).needs_review


def test_the_service_refuses_a_payment_without_a_flag(supervisor):
    customer, _ = customer_with_bills(unpaid=1)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    with pytest.raises(services.InvalidTransition):
        services.payment_review_clear(payment_id=payment.id, actor=supervisor, note="x")
