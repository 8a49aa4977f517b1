"""The customer page lists the customer's reminders; an agent sends one again, audited."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from customers.models import AuditEntry, Bill
from payments import reminders
from payments.models import ReminderMessage
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
