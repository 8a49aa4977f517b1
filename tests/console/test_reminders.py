"""The customer page lists the customer's reminders; an agent sends one again, audited."""

from __future__ import annotations

import datetime

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from customers.models import AuditEntry, Bill
from payments import reminders, reports
from payments.models import ReminderLine, ReminderMessage
from tests.console.factories import area, billed, customer_in, paid
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db


def sent_reminder():
    customer, _ = customer_with_bills(unpaid=1, phone="")
    reminders.reminders_queue(
        bills=Bill.objects.filter(customer=customer), kind=ReminderMessage.Kind.OVERDUE
    )
    reminders.reminders_send_due()
    return ReminderMessage.objects.get(customer=customer)


def test_the_customer_page_lists_the_reminders(agent_client):
    message = sent_reminder()
    page = agent_client.get(reverse("console:customer", args=[message.customer.code]))
    text = page.content.decode()
    assert f'data-reminder="{message.pk}"' in text
    assert "Tin nhắc thanh toán" in text and "đã gửi" in text and "quá hạn" in text
    assert reverse("console:reminder-resend", args=[message.pk]) in text


def test_an_agent_sends_a_reminder_again_and_it_is_audited(agent, agent_client):
    message = sent_reminder()
    url = reverse("console:reminder-resend", args=[message.pk])
    assert message.customer.email in agent_client.get(url).content.decode()
    mail.outbox.clear()
    response = agent_client.post(url, {"reason": "Khách gọi hỏi link thanh toán"}, follow=True)
    assert "Đã gửi lại tin nhắc" in response.content.decode()
    assert [m.to for m in mail.outbox] == [[message.customer.email]]
    entry = AuditEntry.objects.get(action="reminder_resend")
    assert entry.actor == agent and entry.customer == message.customer
    assert entry.reason == "Khách gọi hỏi link thanh toán"
    assert entry.detail["outcome"] == "sent"
    message.refresh_from_db()
    assert message.attempts == 2


def test_a_resend_without_a_reason_sends_nothing(agent_client):
    message = sent_reminder()
    mail.outbox.clear()
    url = reverse("console:reminder-resend", args=[message.pk])
    assert agent_client.post(url, {"reason": ""}).status_code == 400
    assert mail.outbox == [] and not AuditEntry.objects.filter(action="reminder_resend").exists()


def test_finance_staff_cannot_resend(finance_client):
    message = sent_reminder()
    url = reverse("console:reminder-resend", args=[message.pk])
    assert finance_client.get(url).status_code == 403


def test_the_dashboard_counts_reminded_bills_paid_within_three_days(supervisor_client):
    month = datetime.date(2026, 10, 1)
    city, hong_linh = area("PA14HT", "Thành phố Hà Tĩnh"), area("PA14HL", "Hồng Lĩnh")
    soon, late, never = (billed(customer_in(city), month) for _ in range(3))
    other = billed(customer_in(hong_linh), month)
    sent = timezone.now() - datetime.timedelta(days=10)
    for bill in (soon, late, never, other):
        message = ReminderMessage.objects.create(
            customer=bill.customer,
            channel="sms",
            kind=ReminderMessage.Kind.DUE_SOON,
            day=sent.date(),
            not_before=sent,
            sent_at=sent,
            status=ReminderMessage.Status.SENT,
        )
        ReminderLine.objects.create(message=message, bill=bill, kind=message.kind, channel="sms")
    for bill, after in ((soon, 2), (late, 5), (other, 1)):
        paid(bill, method="vietqr", partner=None)
        Bill.objects.filter(pk=bill.pk).update(paid_at=sent + datetime.timedelta(days=after))
    effect = {(row.area_code, row.channel): row for row in reports.reminder_effect(period=month)}
    assert {key: (row.reminded, row.paid_soon) for key, row in effect.items()} == {
        ("PA14HT", "sms"): (3, 1),
        ("PA14HL", "sms"): (1, 1),
    }
    assert effect["PA14HT", "sms"].rate == 33.33
    page = supervisor_client.get(reverse("console:dashboard") + "?month=2026-10&area=PA14HT")
    text = page.content.decode()
    assert "Tin nhắc mang lại thanh toán" in text
    assert 'data-reminder-effect="PA14HT-sms"' in text
    assert 'data-reminder-effect="PA14HL-sms"' not in text
