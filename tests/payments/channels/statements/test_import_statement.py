"""python manage.py import_statement: a bank statement fed to the same matcher as webhooks."""

from __future__ import annotations

import io
import itertools
import json
import re
import threading
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client

from customers.models import Bill
from payments import applier, inbox, matching, references, services
from payments.channels.statements import lines
from payments.models import BankTransfer, InboundMessage, Payment, PaymentEvent
from tests.factories import customer_with_bills, poison_settling
from tests.payments.test_settle_batch import both_ways, same_books

pytestmark = pytest.mark.django_db

ACCOUNT = "0011004321987"
HEADER = "transaction_id,account_number,transaction_date,amount,content"
KEY = "test-transfer-key"
Status = BankTransfer.Status
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _receiving_account(settings):
    settings.VIETQR_BIN = "970436"
    settings.VIETQR_ACCOUNT = ACCOUNT
    settings.TRANSFER_WEBHOOK_API_KEY = KEY


def vietqr_payment(amount=452_160):
    customer, bills = customer_with_bills(unpaid=1, amounts=[amount])
    return services.payment_start(customer_code=customer.code, method="vietqr").payment, bills


def statement(tmp_path: Path, *lines: str, name: str = "statement.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def run(path: Path, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_statement", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(path: Path, *args: str) -> tuple[str, str, CommandError]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("import_statement", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue(), raised.value


def line(payment: Payment | None = None, *, tx=None, amount=None, content=None, account=ACCOUNT):
    tx = tx or f"FT26331{next(_ids):06d}"
    amount = amount if amount is not None else (payment.amount if payment else 100_000)
    if content is None:
        content = f"IBFT {payment.reference.lower()} thanh toan tien dien" if payment else "x"
    return f'{tx},{account},2026-11-27 09:15:00,{amount},"{content}"'


def test_it_matches_the_credits_of_a_statement_and_keeps_the_rest_for_agents(tmp_path):
    paid, paid_bills = vietqr_payment()
    short, _ = vietqr_payment(amount=300_000)
    path = statement(
        tmp_path,
        line(paid, tx="FT1"),
        line(short, tx="FT2", amount=299_000),
        line(tx="FT3", content="chuyen tien nha"),
        line(paid, tx="FT4", amount=-50_000, content="phi dich vu"),
        line(paid, tx="FT5", account="9999888877"),
    )
    out, err = run(path)
    assert err == ""
    statuses = dict(BankTransfer.objects.values_list("external_id", "status"))
    assert statuses == {
        "FT1": Status.MATCHED,
        "FT2": Status.WRONG_AMOUNT,
        "FT3": Status.UNMATCHED,
        "FT4": Status.IGNORED,
        "FT5": Status.UNMATCHED,
    }
    assert set(BankTransfer.objects.values_list("source", flat=True)) == {"statement"}
    paid.refresh_from_db()
    short.refresh_from_db()
    assert paid.status == Payment.Status.SUCCEEDED and short.status == Payment.Status.PENDING
    assert Bill.objects.get(pk=paid_bills[0].pk).status == Bill.Status.PAID
    event = paid.events.get(to_status="succeeded")
    assert event.source == PaymentEvent.Source.STATEMENT
    assert "5 line(s) applied" in out and "1  matched to a payment" in out
    assert "1  wrong amount" in out and "1  debits, ignored" in out


def test_each_line_is_kept_in_the_inbox_under_its_transaction_id(tmp_path):
    payment, _ = vietqr_payment()
    run(statement(tmp_path, line(payment, tx="FT77")))
    message = InboundMessage.objects.get()
    assert message.kind == InboundMessage.Kind.STATEMENT
    assert message.dedupe_key == f"statement:{ACCOUNT}:FT77"
    assert message.processed_at is not None and message.outcome == matching.MATCHED
    assert message.payment_id == payment.pk
    assert json.loads(message.body)["line"] == 2
    assert BankTransfer.objects.get().message_id == message.pk


def test_bad_lines_are_reported_with_their_number_and_the_command_fails(tmp_path):
    payment, _ = vietqr_payment()
    path = statement(
        tmp_path,
        line(payment, tx="FT1"),
        "FT2,0011004321987,27/11/2026 09:15,100000,x",
        "FT3,0011004321987,2026-11-27 09:15:00,12.5,x",
        'FT4,0011004321987,2026-11-27 09:15:00,"100,000",x',
        ",0011004321987,2026-11-27 09:15:00,100000,x",
        "FT6,0011004321987,2026-11-27 09:15:00,0,x",
        "FT7,0011004321987,2026-11-27 09:15:00",
        "",
        line(tx="FT9"),
    )
    out, err, error = run_failing(path)
    assert error.returncode == 1 and "6 line(s) rejected" in str(error)
    for number, words in [
        (3, "transaction_date"),
        (4, "amount"),
        (5, "amount"),
        (6, "transaction_id"),
        (7, "amount"),
        (8, "columns"),
    ]:
        assert any(f"line {number}:" in row and words in row for row in err.splitlines()), (
            number,
            err,
        )
    # The good lines around the bad ones are applied all the same.
    assert set(BankTransfer.objects.values_list("external_id", flat=True)) == {"FT1", "FT9"}
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert "rejected" in out


def test_a_header_without_the_contract_columns_is_refused(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,amount\n1,2\n", encoding="utf-8")
    with pytest.raises(CommandError, match="transaction_id"):
        run(path)
    assert InboundMessage.objects.count() == 0


def test_a_file_that_is_not_utf8_is_refused_whole(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        (HEADER + "\nFT1,0011004321987,2026-11-27 09:15:00,1000,Nguy\xeanx\n").encode("latin-1")
    )
    with pytest.raises(CommandError, match="not UTF-8"):
        run(path)
    assert InboundMessage.objects.count() == 0


def test_a_nul_character_rejects_its_line_only(tmp_path):
    path = statement(
        tmp_path, "FT1,0011004321987,2026-11-27 09:15:00,1000,bad\x00note", line(tx="FT2")
    )
    _out, err, _error = run_failing(path)
    assert "line 2:" in err and "NUL" in err
    assert list(BankTransfer.objects.values_list("external_id", flat=True)) == ["FT2"]


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run(tmp_path / "nope.csv")


def test_importing_the_same_statement_again_changes_nothing(tmp_path):
    payment, _ = vietqr_payment()
    path = statement(tmp_path, line(payment, tx="FT1"), line(tx="FT2"))
    run(path)
    out, _err = run(path)
    assert "2  already imported before" in out
    assert BankTransfer.objects.count() == 2 and InboundMessage.objects.count() == 2
    assert payment.events.filter(to_status="succeeded").count() == 1


def test_a_transaction_id_seen_before_with_other_values_is_rejected(tmp_path):
    run(statement(tmp_path, line(tx="FT1", amount=100_000)))
    _out, err, _error = run_failing(
        statement(tmp_path, line(tx="FT1", amount=900_000), name="other.csv")
    )
    assert "line 2:" in err and "other values" in err and "statement.csv, line 2" in err
    assert BankTransfer.objects.get().amount == 100_000


def test_a_line_repeated_in_the_file_counts_once_and_a_changed_repeat_is_rejected(tmp_path):
    same = line(tx="FT1")
    _out, err, _error = run_failing(statement(tmp_path, same, same, line(tx="FT1", amount=7)))
    assert "line 4:" in err and "line 2" in err
    assert BankTransfer.objects.count() == 1


def _notify(client, payment, reference_code):
    body = {
        "id": next(_ids) + 10_000,
        "transactionDate": "2026-11-27 09:14:58",
        "accountNumber": ACCOUNT,
        "content": f"MBVCB.{reference_code}.{payment.reference}",
        "transferType": "in",
        "transferAmount": payment.amount,
        "referenceCode": reference_code,
    }
    response = client.post(
        "/callbacks/transfers/",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Apikey {KEY}"},
    )
    assert response.status_code == 200
    message = InboundMessage.objects.get(dedupe_key=f"transfer:{body['id']}")
    return applier.apply_one(message.pk)


def test_a_credit_a_webhook_already_announced_is_not_applied_again(client, tmp_path):
    payment, _ = vietqr_payment()
    assert _notify(client, payment, "FT99") == matching.MATCHED
    out, _err = run(statement(tmp_path, line(payment, tx="FT99"), line(payment, tx="FT100")))
    assert BankTransfer.objects.filter(external_id="FT99").count() == 1
    assert BankTransfer.objects.get(external_id="FT99").source == BankTransfer.Source.WEBHOOK
    # A second, different credit for the same payment is money to give back.
    assert BankTransfer.objects.get(external_id="FT100").status == Status.NEEDS_REFUND
    assert payment.events.filter(to_status="succeeded").count() == 1
    assert "1  already recorded" in out


def test_a_webhook_after_the_statement_is_a_duplicate_of_the_same_row(client, tmp_path):
    payment, _ = vietqr_payment()
    run(statement(tmp_path, line(payment, tx="FT42")))
    assert _notify(client, payment, "FT42") == matching.DUPLICATE
    transfer = BankTransfer.objects.get()
    assert transfer.source == BankTransfer.Source.STATEMENT and transfer.status == Status.MATCHED
    assert payment.events.filter(to_status="succeeded").count() == 1


def test_money_no_notification_announced_still_settles_a_late_payment(tmp_path):
    payment, bills = vietqr_payment()
    services.payment_expire(payment_id=payment.pk, now=payment.expires_at)
    run(statement(tmp_path, line(payment)))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert InboundMessage.objects.get().outcome == matching.MATCHED_LATE
    assert Bill.objects.get(pk=bills[0].pk).status == Bill.Status.PAID


def test_batches_decide_exactly_as_the_one_by_one_handler(tmp_path):
    """The batch path is an optimisation: the same lines through the inbox handler one at a
    time give the same statuses and reasons."""
    vietqr_payment()
    customer, _ = customer_with_bills(unpaid=1)
    redirect = services.payment_start(
        customer_code=customer.code, method="redirect", partner_code="SANDBOX"
    ).payment
    kinds = [
        {"content": "no reference here"},
        {"content": f"CT {references.generate()}"},
        {"content": f"CT {redirect.reference}"},
        {"content": "refund", "amount": -1000},
        {"content": "ok", "account": "1234567"},
    ]
    batch_lines = [line(tx=f"A{i}", **kind) for i, kind in enumerate(kinds)]
    run(statement(tmp_path, *batch_lines), "--batch-size", "2")
    for i, kind in enumerate(kinds):
        credit_line = line(tx=f"B{i}", **kind).split(",", 4)
        row = dict(zip(lines.STATEMENT_COLUMNS, credit_line, strict=True))
        row["content"] = row["content"].strip('"')
        credit = lines.credit_from_statement_row(row)
        message, _ = inbox.inbox_store(
            kind=InboundMessage.Kind.STATEMENT,
            dedupe_key=lines.statement_dedupe_key(credit),
            body=lines.statement_body(row),
        )
        applier.apply_one(message.pk)

    def decided(prefix):
        return [
            (status, reason, outcome)
            for status, reason, outcome in BankTransfer.objects.filter(
                external_id__startswith=prefix
            )
            .order_by("external_id")
            .values_list("status", "reason", "message__outcome")
        ]

    assert decided("A") == decided("B")
    assert len(decided("A")) == len(kinds)


def _statement_of_every_kind(client, agent, tmp_path: Path) -> Path:
    """Payments in every state, and a statement with every kind of line about them."""
    fresh, _ = vietqr_payment()
    short, _ = vietqr_payment(amount=300_000)
    expired, _ = vietqr_payment()
    services.payment_expire(payment_id=expired.pk, now=expired.expires_at)
    cancelled, _ = vietqr_payment()
    services.payment_cancel(payment_id=cancelled.pk, report=services.Report(source="api"))
    twice, _ = vietqr_payment()
    retried, _ = vietqr_payment()
    # Announced by notifications before the statement: one with the statement's own
    # transaction id, one with another bank reference (the statement's line is more money).
    announced, _ = vietqr_payment()
    assert _notify(client, announced, "FT-HOOK") == matching.MATCHED
    settled, _ = vietqr_payment()
    assert _notify(client, settled, "FT-OTHER") == matching.MATCHED
    # A bill paid at the counter meanwhile, and two checkouts of the same bill.
    counter, counter_bills = customer_with_bills(unpaid=2, amounts=[120_000, 80_000])
    at_counter = services.payment_start(customer_code=counter.code, method="vietqr").payment
    services.payment_record_cash(
        customer_code=counter.code, bill_numbers=[counter_bills[0].number], actor=agent
    )
    first_of_two, shared = vietqr_payment(amount=250_000)
    # The first one had expired: while it was open, a second checkout would have been handed it.
    services.payment_expire(payment_id=first_of_two.pk, now=first_of_two.expires_at)
    second_of_two = services.payment_start(
        customer_code=first_of_two.customer.code,
        method="vietqr",
        bill_numbers=[shared[0].number],
    ).payment
    # Two payments of one amount named in one note: the one still open takes the money.
    named_first, _ = vietqr_payment(amount=100_000)
    named_second, _ = vietqr_payment(amount=100_000)
    customer, _ = customer_with_bills(unpaid=1)
    redirect = services.payment_start(
        customer_code=customer.code, method="redirect", partner_code="SANDBOX"
    ).payment
    repeated = line(fresh, tx="FT-1")
    return statement(
        tmp_path,
        repeated,
        line(short, tx="FT-2", amount=299_000),
        line(expired, tx="FT-3"),
        line(cancelled, tx="FT-4"),
        line(twice, tx="FT-5"),
        line(twice, tx="FT-6"),
        line(retried, tx="FT-7", amount=retried.amount + 1),
        line(retried, tx="FT-8"),
        line(announced, tx="FT-HOOK", content=f"MBVCB.FT-HOOK.{announced.reference}"),
        line(settled, tx="FT-9"),
        line(tx="FT-10", amount=at_counter.amount, content=f"CT {at_counter.reference}"),
        line(second_of_two, tx="FT-11"),
        line(first_of_two, tx="FT-12"),
        line(named_second, tx="FT-13"),
        line(
            tx="FT-14", amount=100_000, content=f"{named_first.reference} {named_second.reference}"
        ),
        line(redirect, tx="FT-15"),
        line(tx="FT-16", content="chuyen tien nha"),
        line(fresh, tx="FT-17", amount=-50_000, content="phi dich vu"),
        line(fresh, tx="FT-18", account="9999888877"),
        repeated,
    )


@pytest.mark.parametrize("batch_size", ["5000", "4"])
def test_settling_in_batches_leaves_the_same_books_as_settling_one_by_one(
    client, agent, tmp_path, monkeypatch, caplog, batch_size
):
    """The same mixed statement, on two copies of the same books: once with each line a batch of
    its own (as a notification is applied), once in batches. Payments, bills, transfers, events
    and inbox rows come out the same, the command says the same, and the integrity check
    passes after both."""
    path = _statement_of_every_kind(client, agent, tmp_path)

    def import_and_check(size: str = batch_size) -> tuple[str, str, str]:
        out, err = run(path, "--batch-size", size)
        integrity = io.StringIO()
        call_command("check_integrity", stdout=integrity)
        return re.sub(r"in [0-9.]+ s", "", out), err, integrity.getvalue()

    def one_by_one():
        return import_and_check("1")

    single, single_books, batched, batch_books = both_ways(one_by_one, import_and_check)
    assert "not applied" not in caplog.text  # no batch failed
    assert batched[:2] == single[:2]
    assert "OK: no breach." in single[2] and "OK: no breach." in batched[2]
    same_books(single_books, batch_books)
    transfers = {row[0]: row[4] for row in batch_books["transfers"]}
    assert transfers == {
        "FT-1": Status.MATCHED,
        "FT-2": Status.WRONG_AMOUNT,
        "FT-3": Status.MATCHED,
        "FT-4": Status.MATCHED,  # cancelled before the money came: it pays the bill
        "FT-5": Status.MATCHED,
        "FT-6": Status.NEEDS_REFUND,
        "FT-7": Status.WRONG_AMOUNT,
        "FT-8": Status.MATCHED,
        "FT-HOOK": Status.MATCHED,
        "FT-OTHER": Status.MATCHED,
        "FT-9": Status.NEEDS_REFUND,
        "FT-10": Status.MATCHED,
        "FT-11": Status.MATCHED,
        "FT-12": Status.MATCHED,
        "FT-13": Status.MATCHED,
        "FT-14": Status.MATCHED,
        "FT-15": Status.UNMATCHED,
        "FT-16": Status.UNMATCHED,
        "FT-17": Status.IGNORED,
        "FT-18": Status.UNMATCHED,
    }
    outcomes = dict(
        InboundMessage.objects.filter(kind="statement").values_list("dedupe_key", "outcome")
    )
    assert outcomes[f"statement:{ACCOUNT}:FT-HOOK"] == matching.DUPLICATE
    assert outcomes[f"statement:{ACCOUNT}:FT-3"] == matching.MATCHED_LATE
    assert outcomes[f"statement:{ACCOUNT}:FT-4"] == matching.MATCHED_LATE  # after the cancel
    refunds = dict(
        Payment.objects.filter(needs_refund=True).values_list("reference", "refund_amount")
    )
    assert len(refunds) == 2 and sorted(refunds.values()) == [120_000, 250_000]
    assert Payment.objects.filter(needs_review=True).count() == 0
    assert "1  already recorded" in batched[0] and "1  repeated lines" in batched[0]


def test_a_poison_line_is_set_aside_with_its_error_and_the_rest_of_its_batch_applies(
    tmp_path, monkeypatch, caplog
):
    """A batch that fails is rolled back and split until the line that fails is alone: that
    line waits in the inbox with its error, counted as one attempt; the others are applied."""
    first, poison, last = (vietqr_payment()[0] for _ in range(3))
    settle = poison_settling(monkeypatch, poison, "database said no")
    out, err, error = run_failing(
        statement(tmp_path, line(first), line(poison), line(last)), "--batch-size", "3"
    )
    assert error.returncode == 1 and "1 not applied yet" in str(error)
    assert "line 3: not applied now, the inbox will retry" in err and "database said no" in err
    assert "2  matched to a payment" in out
    waiting = InboundMessage.objects.get(processed_at__isnull=True)
    assert waiting.attempts == 1 and json.loads(waiting.body)["line"] == 3
    assert waiting.outcome == InboundMessage.Outcome.ERROR
    assert "database said no" in waiting.outcome_detail
    statuses = dict(Payment.objects.values_list("pk", "status"))
    assert statuses == {
        first.pk: Payment.Status.SUCCEEDED,
        poison.pk: Payment.Status.PENDING,
        last.pk: Payment.Status.SUCCEEDED,
    }
    # Its turn comes again once the wait is over, and then it applies.
    monkeypatch.setattr(services, "payments_mark_succeeded", settle)
    InboundMessage.objects.filter(pk=waiting.pk).update(last_enqueued_at=None)
    assert applier.apply_waiting() == 1
    poison.refresh_from_db()
    assert poison.status == Payment.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_notifications_racing_the_statement_for_the_same_credits_apply_each_once(tmp_path):
    """The bank's notifications of the very credits a statement lists arrive while it is being
    imported, newest first: each credit is one transfer, each payment settled once, no deadlock."""
    payments = [vietqr_payment()[0] for _ in range(40)]
    path = statement(
        tmp_path, *(line(payment, tx=f"RACE-{i}") for i, payment in enumerate(payments))
    )
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def importing():
        try:
            barrier.wait()
            run(path, "--batch-size", "10")
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    def notifying():
        try:
            client = Client()
            barrier.wait()
            for i, payment in reversed(list(enumerate(payments))):
                _notify(client, payment, f"RACE-{i}")
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=importing), threading.Thread(target=notifying)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert BankTransfer.objects.count() == 40
    assert set(BankTransfer.objects.values_list("status", flat=True)) == {Status.MATCHED}
    for payment in payments:
        assert payment.events.filter(to_status="succeeded").count() == 1
    outcomes = sorted(
        InboundMessage.objects.filter(kind="statement").values_list("outcome", flat=True)
    )
    notified = sorted(
        InboundMessage.objects.filter(kind="transfer").values_list("outcome", flat=True)
    )
    assert set(outcomes) | set(notified) <= {matching.MATCHED, matching.DUPLICATE}
    assert outcomes.count(matching.MATCHED) + notified.count(matching.MATCHED) == 40
    integrity = io.StringIO()
    call_command("check_integrity", stdout=integrity)
    assert "OK: no breach." in integrity.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_credit_a_notification_records_while_the_line_is_stored_goes_to_the_handler(tmp_path):
    """The notification's transfer row is written (not yet committed) before the statement
    looks, and committed while the statement waits to insert the same row."""
    payment, _ = vietqr_payment()
    stored = threading.Event()
    failures: list[BaseException] = []

    def notifying():
        try:
            with transaction.atomic():
                message, _ = inbox.inbox_store(
                    kind=InboundMessage.Kind.TRANSFER, dedupe_key="transfer:held", body="{}"
                )
                BankTransfer.objects.create(
                    source=BankTransfer.Source.WEBHOOK,
                    external_id="HELD-1",
                    account_number=ACCOUNT,
                    amount=payment.amount,
                    occurred_at=payment.created_at,
                    status=Status.MATCHED,
                    payment=payment,
                    message=message,
                    reason="held",
                )
                stored.set()
                time.sleep(2)
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=notifying)
    thread.start()
    assert stored.wait(10)
    out, _err = run(statement(tmp_path, line(payment, tx="HELD-1")))
    thread.join(timeout=30)
    assert not failures, failures
    message = InboundMessage.objects.get(kind="statement")
    assert message.processed_at is not None and message.outcome == matching.DUPLICATE
    assert BankTransfer.objects.get().reason == "held"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING  # the held row says matched; nothing ran
    assert "1  already recorded" in out


def test_each_line_is_written_to_the_inbox_once_already_applied(tmp_path):
    """A line applied as it arrives is inserted with its outcome: no inbox row is claimed or
    updated afterwards, and the transfer names the row it was stored as."""
    from django.test.utils import CaptureQueriesContext

    payment, _ = vietqr_payment()
    path = statement(tmp_path, line(payment, tx="ONCE-1"), line(tx="ONCE-2"))
    with CaptureQueriesContext(connection) as queries:
        run(path)
    written = [
        sql
        for sql in (query["sql"].upper() for query in queries.captured_queries)
        if "PAYMENTS_INBOUNDMESSAGE" in sql
        and (sql.lstrip().startswith("UPDATE") or "FOR UPDATE" in sql)
    ]
    assert written == []
    messages = dict(
        InboundMessage.objects.filter(kind="statement").values_list("dedupe_key", "outcome")
    )
    assert messages == {
        f"statement:{ACCOUNT}:ONCE-1": matching.MATCHED,
        f"statement:{ACCOUNT}:ONCE-2": matching.UNMATCHED,
    }
    for transfer in BankTransfer.objects.select_related("message"):
        assert transfer.message.dedupe_key == f"statement:{ACCOUNT}:{transfer.external_id}"
        assert transfer.message.processed_at is not None


@pytest.mark.django_db(transaction=True)
def test_two_imports_of_the_same_statement_at_once_apply_each_line_once(tmp_path):
    """Imports take turns, an import at a time: the second finds what the first stored."""
    payments = [vietqr_payment()[0] for _ in range(12)]
    path = statement(
        tmp_path, *(line(payment, tx=f"TWICE-{i}") for i, payment in enumerate(payments))
    )
    barrier = threading.Barrier(2)
    outputs: list[str] = []
    failures: list[BaseException] = []

    def importing():
        try:
            barrier.wait()
            outputs.append(run(path, "--batch-size", "4")[0])
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=importing) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert InboundMessage.objects.filter(kind="statement").count() == 12
    assert BankTransfer.objects.filter(status=Status.MATCHED).count() == 12
    for payment in payments:
        assert payment.events.filter(to_status="succeeded").count() == 1
    matched = sum(
        int(re.search(r"(\d+)  matched", out).group(1)) for out in outputs if "matched" in out
    )
    assert matched == 12


def test_two_lines_that_together_bring_the_amount_settle_the_payment_once(tmp_path):
    payment, bills = vietqr_payment(amount=1_383_622)
    out, _err = run(
        statement(
            tmp_path,
            line(payment, tx="PART-1", amount=100_000),
            line(payment, tx="PART-2", amount=1_283_622),
        )
    )
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and not payment.needs_refund
    assert Bill.objects.get(pk=bills[0].pk).paid_by_id == payment.pk
    assert set(BankTransfer.objects.values_list("status", flat=True)) == {Status.MATCHED}
    assert "1  matched to a payment" in out and "1  wrong amount" in out


@pytest.mark.django_db(transaction=True)
def test_a_batch_naming_the_payment_of_the_batch_in_flight_sees_what_that_one_kept(
    tmp_path, monkeypatch
):
    """Two batches are applied at once, each on its own connection; one that names a payment
    the batch in flight names waits for it to commit, so money kept short there is made whole
    by the next line, exactly as in one batch."""
    store_applied = inbox.inbox_store_applied

    def slow_to_commit(*, messages, **kwargs):
        store_applied(messages=messages, **kwargs)
        if any(message.dedupe_key.endswith("PART-1") for message in messages):
            time.sleep(0.5)  # the next batch, unless it waits, decides meanwhile

    monkeypatch.setattr(inbox, "inbox_store_applied", slow_to_commit)
    payment, bills = vietqr_payment(amount=1_383_622)
    others = [vietqr_payment()[0] for _ in range(6)]
    path = statement(
        tmp_path,
        line(others[0]),
        line(payment, tx="PART-1", amount=100_000),
        line(payment, tx="PART-2", amount=1_283_622),
        *(line(other) for other in others[1:]),
    )
    out, _err = run(path, "--batch-size", "1")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and not payment.needs_refund
    assert Bill.objects.get(pk=bills[0].pk).paid_by_id == payment.pk
    assert set(BankTransfer.objects.values_list("status", flat=True)) == {Status.MATCHED}
    for other in others:
        other.refresh_from_db()
        assert other.status == Payment.Status.SUCCEEDED
    assert "7  matched to a payment" in out and "1  wrong amount" in out


@pytest.mark.django_db(transaction=True)
def test_a_poison_line_among_batches_applied_side_by_side_waits_alone(tmp_path, monkeypatch):
    """On two connections as on one: the line that fails waits in the inbox with its error,
    every other line of every batch is applied, and the appliers end with the import."""
    payments = [vietqr_payment()[0] for _ in range(8)]
    poison_settling(monkeypatch, payments[5], "database said no")
    out, err, error = run_failing(
        statement(tmp_path, *(line(payment) for payment in payments)), "--batch-size", "2"
    )
    assert error.returncode == 1 and "1 not applied yet" in str(error)
    assert "line 7: not applied now, the inbox will retry" in err
    assert "7  matched to a payment" in out
    waiting = InboundMessage.objects.get(processed_at__isnull=True)
    assert json.loads(waiting.body)["line"] == 7 and waiting.attempts == 1
    statuses = dict(Payment.objects.values_list("pk", "status"))
    assert [statuses[payment.pk] for payment in payments] == [Payment.Status.SUCCEEDED] * 5 + [
        Payment.Status.PENDING
    ] + [Payment.Status.SUCCEEDED] * 2
    assert not [t for t in threading.enumerate() if t.name.startswith("statement-applier")]
