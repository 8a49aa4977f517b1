"""Reminders: queued once per bill, kind and channel; one message per customer, channel and
day; quiet hours for SMS; paid bills, opt-outs and missing contacts checked when sending;
failures recorded and retried with backoff up to a limit."""

from __future__ import annotations

import datetime
import signal
import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core import mail
from django.utils import timezone

from customers.models import Bill
from payments import notifications, reminders, services
from payments.models import ReminderLine, ReminderMessage, ReminderOptOut
from tests.factories import BillFactory, CustomerFactory, customer_with_bills

pytestmark = pytest.mark.django_db

Status = ReminderMessage.Status
Kind = ReminderMessage.Kind


@pytest.fixture(autouse=True)
def _sms(settings):
    settings.SMS_BACKEND = "payments.notifications.LocmemSMSBackend"
    notifications.LocmemSMSBackend.outbox.clear()


def at(hour: int, minute: int = 0, days: int = 0) -> datetime.datetime:
    day = timezone.localdate() + datetime.timedelta(days=days)
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(hour, minute)))


def bills_of(customer):
    return Bill.objects.filter(customer=customer)


def pay(bill: Bill) -> None:
    payment = services.payment_start(
        customer_code=bill.customer.code, method="vietqr", bill_numbers=[bill.number]
    ).payment
    services.payment_mark_succeeded(
        payment_id=payment.id, report=services.Report(source=services.Source.TRANSFER)
    )


def test_a_bill_is_queued_once_per_kind_and_channel():
    customer, _ = customer_with_bills(unpaid=1)
    now = at(10)
    assert reminders.reminders_queue(bills=bills_of(customer), kind=Kind.NEW_BILL, now=now) == 2
    assert reminders.reminders_queue(bills=bills_of(customer), kind=Kind.NEW_BILL, now=now) == 0
    channels = sorted(ReminderMessage.objects.values_list("channel", flat=True))
    assert channels == ["email", "sms"]
    # Another kind for the same bill is another reminder, on the same day's message.
    assert reminders.reminders_queue(bills=bills_of(customer), kind=Kind.OVERDUE, now=now) == 2
    assert ReminderMessage.objects.count() == 2
    assert ReminderLine.objects.count() == 4
    # The message names the bill once, as overdue.
    reminders.reminders_send_due(now=now)
    [(_, sms)] = notifications.LocmemSMSBackend.outbox
    assert sms.count("/b/") == 1 and "da qua han" in sms


def test_several_bills_of_a_customer_go_in_one_message_a_day():
    customer, bills = customer_with_bills(unpaid=3, amounts=[100_000, 200_000, 300_000])
    reminders.reminders_queue(bills=bills_of(customer), kind=Kind.OVERDUE, now=at(10))
    outcome = reminders.reminders_send_due(now=at(10, 1))
    assert outcome == {Status.SENT: 2}
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert "100.000 ₫" in body and "300.000 ₫" in body and "600.000 ₫" in body
    [(phone, sms)] = notifications.LocmemSMSBackend.outbox
    assert phone == "0912345678"
    assert sms.count("/b/") == 3


def test_a_bill_queued_after_the_days_message_went_waits_for_tomorrow():
    customer, bills = customer_with_bills(unpaid=2)
    reminders.reminders_queue(
        bills=Bill.objects.filter(pk=bills[0].pk), kind=Kind.OVERDUE, now=at(10)
    )
    reminders.reminders_send_due(now=at(10, 1))
    reminders.reminders_queue(
        bills=Bill.objects.filter(pk=bills[1].pk), kind=Kind.DUE_SOON, now=at(15)
    )
    later = ReminderLine.objects.get(bill=bills[1], channel="email").message
    assert later.day == timezone.localdate() + datetime.timedelta(days=1)
    assert later.status == Status.QUEUED and later.not_before == at(7, days=1)
    # Nothing more today, for either channel.
    assert reminders.reminders_send_due(now=at(20)) == {}
    assert len(mail.outbox) == 1


def test_no_sms_in_the_quiet_hours_it_waits_for_seven():
    customer, _ = customer_with_bills(unpaid=1)
    reminders.reminders_queue(bills=bills_of(customer), kind=Kind.NEW_BILL, now=at(22))
    sms = ReminderMessage.objects.get(channel="sms")
    assert sms.not_before == at(7, days=1) and sms.day == timezone.localdate() + datetime.timedelta(
        days=1
    )
    assert reminders.reminders_send_due(now=at(22, 5)) == {Status.SENT: 1}  # the e-mail
    assert notifications.LocmemSMSBackend.outbox == []
    assert reminders.reminders_send_due(now=at(6, 59, days=1)) == {}
    assert reminders.reminders_send_due(now=at(7, days=1)) == {Status.SENT: 1}
    assert len(notifications.LocmemSMSBackend.outbox) == 1


def test_quiet_hours_boundaries():
    assert reminders.earliest_send("sms", at(6, 59)) == at(7)
    assert reminders.earliest_send("sms", at(7)) == at(7)
    assert reminders.earliest_send("sms", at(20, 59)) == at(20, 59)
    assert reminders.earliest_send("sms", at(21)) == at(7, days=1)
    assert reminders.earliest_send("email", at(23)) == at(23)


def test_a_bill_paid_before_the_send_is_not_reminded_of():
    customer, bills = customer_with_bills(unpaid=1)
    reminders.reminders_queue(bills=bills_of(customer), kind=Kind.DUE_SOON, now=at(10))
    pay(bills[0])
    assert reminders.reminders_send_due(now=at(10, 1)) == {Status.SKIPPED: 2}
    assert set(ReminderMessage.objects.values_list("reason", flat=True)) == {reminders.SKIP_PAID}
    assert mail.outbox == [] and notifications.LocmemSMSBackend.outbox == []


def test_a_paid_bill_is_not_queued_and_only_its_unpaid_sibling_is_named():
    customer, bills = customer_with_bills(unpaid=2, amounts=[111_000, 222_000])
    pay(bills[0])
    reminders.reminders_queue(bills=bills_of(customer), kind=Kind.OVERDUE, now=at(10))
    assert set(ReminderLine.objects.values_list("bill", flat=True)) == {bills[1].pk}


def test_only_customers_with_that_contact_and_not_opted_out():
    no_phone = CustomerFactory(phone="")
    BillFactory(customer=no_phone)
    opted = CustomerFactory()
    BillFactory(customer=opted)
    ReminderOptOut.objects.create(customer=opted, channel="email")
    reminders.reminders_queue(bills=Bill.objects.all(), kind=Kind.NEW_BILL, now=at(10))
    queued = set(ReminderMessage.objects.values_list("customer", "channel"))
    assert queued == {(no_phone.pk, "email"), (opted.pk, "sms")}


def test_an_opt_out_after_queueing_is_effective_at_once():
    customer, _ = customer_with_bills(unpaid=1)
    reminders.reminders_queue(bills=bills_of(customer), kind=Kind.NEW_BILL, now=at(10))
    reminders.reminder_opt_out(customer_id=customer.pk, channel="sms")
    assert reminders.reminders_send_due(now=at(10, 1)) == {Status.SENT: 1, Status.SKIPPED: 1}
    skipped = ReminderMessage.objects.get(channel="sms")
    assert skipped.status == Status.SKIPPED and skipped.reason == reminders.SKIP_OPTED_OUT
    assert notifications.LocmemSMSBackend.outbox == []


def test_the_messages_carry_amount_due_date_pay_link_and_opt_out_link():
    customer, bills = customer_with_bills(unpaid=1, amounts=[452_160])
    bill = bills[0]
    reminders.reminders_queue(bills=bills_of(customer), kind=Kind.NEW_BILL, now=at(10))
    reminders.reminders_send_due(now=at(10, 1))
    [message] = mail.outbox
    [(_, sms)] = notifications.LocmemSMSBackend.outbox
    due = bill.due_date.strftime("%d/%m/%Y")
    for text in (message.body, sms):
        assert "452.160 ₫" in text and due in text
        assert "/b/" in text and "/unsubscribe/" in text
    assert customer.code in message.subject
    assert "Thanh toán ngay" in message.body
    sent = ReminderMessage.objects.get(channel="sms")
    assert sent.text == sms and sent.to == "0912345678" and sent.sent_at is not None


def test_a_failed_send_is_retried_with_backoff_then_recorded_failed(settings):
    settings.SMS_GATEWAY_URL = "http://127.0.0.1:1/sms"  # nothing listens there
    settings.REMINDER_MAX_ATTEMPTS = 2
    settings.REMINDER_RETRY_SECONDS = 60
    customer, _ = customer_with_bills(unpaid=1, email="")
    reminders.reminders_queue(bills=bills_of(customer), kind=Kind.NEW_BILL, now=at(10))
    assert reminders.reminders_send_due(now=at(10)) == {Status.QUEUED: 1}
    message = ReminderMessage.objects.get()
    assert message.attempts == 1 and "unreachable" in message.reason
    assert message.not_before == at(10, 1)
    assert reminders.reminders_send_due(now=at(10, 0)) == {}  # waiting for its backoff
    assert reminders.reminders_send_due(now=at(10, 1)) == {Status.FAILED: 1}
    message.refresh_from_db()
    assert message.status == Status.FAILED and message.attempts == 2
    assert reminders.reminders_send_due(now=at(12)) == {}


def test_a_sent_message_is_never_claimed_again():
    customer, _ = customer_with_bills(unpaid=1)
    reminders.reminders_queue(bills=bills_of(customer), kind=Kind.NEW_BILL, now=at(10))
    reminders.reminders_send_due(now=at(10))
    assert reminders.reminders_send_due(now=at(11)) == {}
    assert reminders.reminders_queue(bills=bills_of(customer), kind=Kind.NEW_BILL, now=at(12)) == 0
    assert len(mail.outbox) == 1


def test_the_daily_round_queues_due_soon_and_overdue_once(settings):
    settings.REMINDER_DUE_SOON_DAYS = 3
    today = timezone.localdate()
    soon = BillFactory(due_date=today + datetime.timedelta(days=3))
    late = BillFactory(due_date=today - datetime.timedelta(days=1), months_ago=2)
    later = BillFactory(due_date=today + datetime.timedelta(days=10), months_ago=3)
    assert reminders.reminders_queue_due(today=today, now=at(10)) == 4
    assert reminders.reminders_queue_due(today=today, now=at(10)) == 0
    kinds = set(ReminderLine.objects.values_list("bill", "kind").distinct())
    assert kinds == {(soon.pk, Kind.DUE_SOON), (late.pk, Kind.OVERDUE)}
    assert not ReminderLine.objects.filter(bill=later).exists()


def test_an_agent_resend_sends_again_but_not_a_paid_bill():
    customer, bills = customer_with_bills(unpaid=1, phone="")
    reminders.reminders_queue(bills=bills_of(customer), kind=Kind.NEW_BILL, now=at(10))
    reminders.reminders_send_due(now=at(10))
    message = ReminderMessage.objects.get()
    assert reminders.reminder_resend(message_id=message.pk, now=at(11)) == Status.SENT
    assert len(mail.outbox) == 2
    pay(bills[0])
    assert reminders.reminder_resend(message_id=message.pk, now=at(12)) == Status.SKIPPED
    assert len(mail.outbox) == 2


def test_without_the_link_keys_nothing_is_sent(settings):
    settings.UNSUBSCRIBE_LINK_KEY = ""
    customer, _ = customer_with_bills(unpaid=1)
    reminders.reminders_queue(bills=bills_of(customer), kind=Kind.NEW_BILL, now=at(10))
    assert reminders.reminders_send_due(now=at(10)) == {Status.SKIPPED: 2}
    assert set(ReminderMessage.objects.values_list("reason", flat=True)) == {
        reminders.SKIP_NO_LINKS
    }
    assert mail.outbox == []


class TimedOutGateway:
    """A gateway so slow that the task's soft time limit strikes while it is being called."""

    def send(self, *, to: str, text: str) -> None:
        raise SoftTimeLimitExceeded()


def test_a_sender_out_of_time_never_sends_the_cut_off_message_twice(settings):
    settings.SMS_BACKEND = "tests.reminders.test_rules.TimedOutGateway"
    settings.REMINDER_SEND_CONCURRENCY = 1
    for _ in range(2):
        customer, _ = customer_with_bills(unpaid=1, email="")
    reminders.reminders_queue(bills=Bill.objects.all(), kind=Kind.NEW_BILL, now=at(10))
    with pytest.raises(SoftTimeLimitExceeded):
        reminders.reminders_send_due(now=at(10))
    first, second = ReminderMessage.objects.order_by("pk")
    assert (first.status, first.reason) == (Status.FAILED, reminders.INTERRUPTED)
    assert (second.status, second.attempts) == (Status.QUEUED, 0)


class SlowGateway:
    """Answers after a pause, so several messages are in flight at once."""

    def send(self, *, to: str, text: str) -> None:
        time.sleep(0.2)
        notifications.LocmemSMSBackend.outbox.append((to, text))


def test_messages_are_handed_over_concurrently_and_each_recorded(settings):
    settings.SMS_BACKEND = "tests.reminders.test_rules.SlowGateway"
    settings.REMINDER_SEND_CONCURRENCY = 8
    for _ in range(8):
        customer_with_bills(unpaid=1, email="")
    reminders.reminders_queue(bills=Bill.objects.all(), kind=Kind.NEW_BILL, now=at(10))
    started = time.monotonic()
    assert reminders.reminders_send_due(now=at(10)) == {Status.SENT: 8}
    # One at a time it would take 1.6 s.
    assert time.monotonic() - started < 1.2
    assert len(notifications.LocmemSMSBackend.outbox) == 8
    sent = ReminderMessage.objects.filter(status=Status.SENT)
    assert sorted(sent.values_list("to", flat=True)) == sorted(
        to for to, _ in notifications.LocmemSMSBackend.outbox
    )


def test_out_of_time_with_messages_in_flight_none_is_sent_twice(settings):
    """The soft time limit strikes while messages are with the gateway: those handed over are
    recorded failed (they may have gone), those not started wait for the next sender."""
    settings.SMS_BACKEND = "tests.reminders.test_rules.SlowGateway"
    settings.REMINDER_SEND_CONCURRENCY = 2
    for _ in range(5):
        customer_with_bills(unpaid=1, email="")
    reminders.reminders_queue(bills=Bill.objects.all(), kind=Kind.NEW_BILL, now=at(10))

    def strike(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, strike)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        with pytest.raises(SoftTimeLimitExceeded):
            reminders.reminders_send_due(now=at(10))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    statuses = list(ReminderMessage.objects.order_by("pk").values_list("status", "reason"))
    assert statuses.count((Status.FAILED, reminders.INTERRUPTED)) == 2
    assert statuses.count((Status.QUEUED, "")) == 3
    assert not ReminderMessage.objects.filter(status=Status.SENDING).exists()
    # The next sender sends the three that never went, and only those.
    time.sleep(0.3)  # the two cut-off deliveries finish in their threads
    notifications.LocmemSMSBackend.outbox.clear()
    assert reminders.reminders_send_due(now=at(10)) == {Status.SENT: 3}
    assert len(notifications.LocmemSMSBackend.outbox) == 3


class BrokenRecord(Exception):
    pass


def test_a_sender_stopped_by_any_error_leaves_nothing_it_did_not_send_sending(
    settings, monkeypatch
):
    """Not only the time limit: whatever stops a sender mid-batch, a message that never left
    waits for the next one, and only one that went stays `sending` (its record failed)."""
    settings.REMINDER_SEND_CONCURRENCY = 1
    for _ in range(3):
        customer_with_bills(unpaid=1, email="")
    reminders.reminders_queue(bills=Bill.objects.all(), kind=Kind.NEW_BILL, now=at(10))

    def fail_to_record(*args, **kwargs):
        raise BrokenRecord()

    monkeypatch.setattr(reminders, "_RECORD_EVERY", 1)
    monkeypatch.setattr(reminders, "_record_all", fail_to_record)
    with pytest.raises(BrokenRecord):
        reminders.reminders_send_due(now=at(10))
    assert len(notifications.LocmemSMSBackend.outbox) == 1
    assert ReminderMessage.objects.filter(status=Status.SENDING).count() == 1
    assert ReminderMessage.objects.filter(status=Status.QUEUED, attempts=0).count() == 2
