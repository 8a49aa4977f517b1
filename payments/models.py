"""Payments, who collects them, and every message a bank sent about them.

State changes happen only in `payments.services`; these classes hold data and the database
constraints that keep the rules true even if code is wrong.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common import netaddr
from customers.models import Bill, Customer


class PartnerQuerySet(models.QuerySet["Partner"]):
    def receiving_bank(self) -> Partner | None:
        """The bank holding the utility's account (settings.VIETQR_BIN): it receives every
        VietQR transfer and every statement line."""
        return self.filter(napas_bin=settings.VIETQR_BIN).first()


class Partner(models.Model):
    """A bank, intermediary or cash channel that collects bills for the utility.

    Secrets, terminal codes and endpoints come from the environment (`PARTNER_<CODE>_SECRET`
    and friends, see `settings.PARTNER_CREDENTIALS`), never from this table.
    """

    class Kind(models.TextChoices):
        BANK = "bank", _("bank")
        INTERMEDIARY = "intermediary", _("payment intermediary")
        GATEWAY = "gateway", _("payment gateway")
        CASH = "cash", _("cash channel")

    class Protocol(models.TextChoices):
        """The protocol of a partner's payment page (`payments.channels.registry`)."""

        VNPAY = "vnpay", _("VNPay 2.1.0 payment page")
        MOMO = "momo", _("MoMo wallet (API v2)")
        ZALOPAY = "zalopay", _("ZaloPay wallet (API v2)")

    code = models.CharField(_("code"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    napas_bin = models.CharField(_("NAPAS BIN"), max_length=6, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    # Offers a payment page the household is sent to (pay URL, return, notification, status
    # query), in `redirect_protocol`: a bank's VNPay 2.1.0 page, or a wallet's own.
    offers_redirect = models.BooleanField(_("offers bank redirect"), default=False)
    redirect_protocol = models.CharField(
        _("payment page protocol"), max_length=16, choices=Protocol.choices, default=Protocol.VNPAY
    )
    # May call the collection API from its own app or counters.
    collects = models.BooleanField(_("uses the collection API"), default=False)
    display_order = models.PositiveSmallIntegerField(_("display order"), default=100)

    objects = PartnerQuerySet.as_manager()

    class Meta:
        verbose_name = _("partner")
        verbose_name_plural = _("partners")
        ordering = ["display_order", "code"]

    def __str__(self) -> str:
        return f"{self.code} – {self.name}"

    @property
    def credentials(self) -> dict[str, str]:
        return settings.PARTNER_CREDENTIALS.get(self.code, {})

    @property
    def secret(self) -> str:
        return self.credentials.get("secret", "")

    @property
    def is_cash(self) -> bool:
        return self.kind == self.Kind.CASH

    @property
    def is_usable(self) -> bool:
        """Enabled here and configured in the environment (cash channels need no secret): a
        secret, or a wallet's keys (ZaloPay signs with KEY1 and KEY2, not a secret). What each
        way of working with us needs on top is checked where it is used (the collection API
        its secret, a payment page its channel's credentials)."""
        credentials = self.credentials
        keys = credentials.get("secret") or credentials.get("key1") or credentials.get("key2")
        return self.enabled and (self.is_cash or bool(keys))

    def address_allowed(self, address: str) -> bool:
        """Whether a call from `address` may be this partner's: any address when
        `PARTNER_<CODE>_ALLOWED_IPS` is unset, else one of its addresses or networks."""
        return netaddr.address_allowed(
            address,
            self.credentials.get("allowed_ips", ""),
            setting=f"PARTNER_{self.code}_ALLOWED_IPS",
        )


class Payment(models.Model):
    class Status(models.TextChoices):
        CREATED = "created", _("created")
        PENDING = "pending", _("pending")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")
        EXPIRED = "expired", _("expired")
        REFUNDED = "refunded", _("refunded")
        # A collection partner took the payment back on the same business day.
        REVERSED = "reversed", _("reversed")

    class Method(models.TextChoices):
        VIETQR = "vietqr", _("VietQR transfer")
        REDIRECT = "redirect", _("bank payment page")
        COLLECTION = "collection", _("partner app or counter")
        CASH = "cash", _("cash")

    NON_CASH_METHODS = frozenset({Method.VIETQR, Method.REDIRECT, Method.COLLECTION})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Short, upper-case, unambiguous, with a check character: typed into transfer notes.
    reference = models.CharField(_("reference"), max_length=16)
    # Indexed by payment_customer_recent, whose first column it is.
    customer = models.ForeignKey(
        Customer,
        on_delete=models.PROTECT,
        related_name="payments",
        verbose_name=_("customer"),
        db_index=False,
    )
    amount = models.BigIntegerField(_("amount (VND)"))
    method = models.CharField(_("method"), max_length=16, choices=Method.choices)
    partner = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="payments",
        verbose_name=_("partner"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.CREATED
    )
    # The bank's own transaction number (vnp_TransactionNo, a collection transaction_id, ...).
    provider_txn_id = models.CharField(_("bank transaction id"), max_length=64, blank=True)
    # Protocol details a later step needs, e.g. the vnp_CreateDate that querydr must repeat.
    provider_data = models.JSONField(_("provider data"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    succeeded_at = models.DateTimeField(_("succeeded at"), null=True, blank=True)
    # Money received for bills another payment had already paid: an agent must give it back.
    needs_refund = models.BooleanField(_("needs refund"), default=False)
    refund_amount = models.BigIntegerField(_("amount to refund (VND)"), default=0)
    refunded_at = models.DateTimeField(_("refunded at"), null=True, blank=True)
    # A bank said something that contradicts what we recorded: an agent must look.
    needs_review = models.BooleanField(_("needs review"), default=False)
    review_reason = models.TextField(_("review reason"), blank=True)
    # When the poller should next ask the bank about a pending redirect payment.
    next_poll_at = models.DateTimeField(_("next status check"), null=True, blank=True)
    poll_count = models.PositiveSmallIntegerField(_("status checks"), default=0)
    contact_email = models.EmailField(_("receipt e-mail"), blank=True)
    contact_phone = models.CharField(_("receipt phone"), max_length=20, blank=True)
    receipt_sent_at = models.DateTimeField(_("receipt sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["reference"], name="payment_reference_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(refund_amount__gte=0) & Q(refund_amount__lte=models.F("amount")),
                name="payment_refund_within_amount",
            ),
            # A bank's transaction id names one payment of that bank, whatever the channel.
            models.UniqueConstraint(
                fields=["partner", "provider_txn_id"],
                condition=~Q(provider_txn_id=""),
                name="payment_unique_partner_txn",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=Q(status="pending"),
                name="payment_pending_expiry",
            ),
            models.Index(
                fields=["next_poll_at"],
                condition=Q(status__in=["pending", "expired"], method="redirect"),
                name="payment_poll_due",
            ),
            models.Index(fields=["customer", "-created_at"], name="payment_customer_recent"),
            models.Index(
                fields=["created_at"], condition=Q(needs_refund=True), name="payment_needs_refund"
            ),
            models.Index(
                fields=["created_at"], condition=Q(needs_review=True), name="payment_needs_review"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.amount} {self.status}"

    @property
    def receipt_number(self) -> str:
        return self.reference


class PaymentBill(models.Model):
    """A bill a payment was meant to pay, and whether it did."""

    # Indexed by the (payment, bill) unique constraint, whose first column it is.
    payment = models.ForeignKey(
        Payment,
        on_delete=models.PROTECT,
        related_name="lines",
        verbose_name=_("payment"),
        db_index=False,
    )
    bill = models.ForeignKey(
        Bill, on_delete=models.PROTECT, related_name="payment_lines", verbose_name=_("bill")
    )
    amount = models.BigIntegerField(_("amount (VND)"))
    # True once this payment is the one that paid the bill.
    applied = models.BooleanField(_("applied"), default=False)

    class Meta:
        verbose_name = _("bill of a payment")
        verbose_name_plural = _("bills of payments")
        constraints = [
            models.UniqueConstraint(fields=["payment", "bill"], name="payment_bill_once"),
            # The database's own guarantee that no bill is paid by two payments.
            models.UniqueConstraint(
                fields=["bill"], condition=Q(applied=True), name="bill_applied_once"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="payment_bill_amount"),
        ]

    def __str__(self) -> str:
        return f"{self.payment_id} {self.bill_id} {self.amount}"


class PaymentEvent(models.Model):
    """Append-only history of a payment: every transition and every report about it."""

    class Source(models.TextChoices):
        API = "api", _("portal API")
        IPN = "ipn", _("bank notification (IPN)")
        RETURN = "return", _("bank return")
        QUERY = "query", _("bank status query")
        TRANSFER = "transfer", _("bank transfer notification")
        STATEMENT = "statement", _("bank statement")
        COLLECTION = "collection", _("collection API")
        AGENT = "agent", _("agent")
        SYSTEM = "system", _("system")

    # Indexed by event_payment_at, whose first column it is.
    payment = models.ForeignKey(
        Payment,
        on_delete=models.PROTECT,
        related_name="events",
        verbose_name=_("payment"),
        db_index=False,
    )
    at = models.DateTimeField(_("at"), default=timezone.now)
    from_status = models.CharField(_("from"), max_length=16, blank=True)
    to_status = models.CharField(_("to"), max_length=16, blank=True)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("staff member"),
    )
    message = models.ForeignKey(
        "InboundMessage",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="events",
        verbose_name=_("inbound message"),
    )

    class Meta:
        verbose_name = _("payment event")
        verbose_name_plural = _("payment events")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["payment", "at"], name="event_payment_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.from_status}->{self.to_status} {self.source}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("Payment events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("Payment events are append-only.")


# The outcomes of a message refused before anything was applied: such a row is purged after
# INBOX_REFUSED_RETENTION_DAYS (payments.inbox.inbox_purge_refused).
INBOX_REFUSED_OUTCOMES = ("invalid_signature", "address_not_allowed", "unauthorized")


class InboundMessage(models.Model):
    """The inbox: every callback, webhook and partner call, stored before it is acted on.

    `dedupe_key` is unique, so a message a bank sends twice is stored once and applied once.
    Accepted messages are never deleted; refused ones (INBOX_REFUSED_OUTCOMES: a forged
    signature, missing credentials, an unlisted address) are kept short and purged after
    INBOX_REFUSED_RETENTION_DAYS (`payments.inbox`).
    """

    class Kind(models.TextChoices):
        IPN = "ipn", _("gateway notification (IPN)")
        QUERY = "query", _("gateway status answer")
        TRANSFER = "transfer", _("transfer notification")
        STATEMENT = "statement", _("statement line")
        INQUIRY = "inquiry", _("collection inquiry")
        COLLECTION = "collection", _("collection payment")
        REVERSAL = "reversal", _("collection reversal")

    class Outcome(models.TextChoices):
        """What applying a message did: written only by `payments.inbox`."""

        # Any channel
        ERROR = "error", _("not applied yet: the last attempt failed")
        NO_HANDLER = "no_handler", _("kept for the record")
        UNREADABLE = "unreadable", _("unreadable")
        INVALID_SIGNATURE = "invalid_signature", _("signature did not verify")
        ADDRESS_NOT_ALLOWED = "address_not_allowed", _("sent from an address not allowed")
        # Gateway notifications and status answers
        WRONG_TERMINAL = "wrong_terminal", _("another terminal")
        ORDER_NOT_FOUND = "order_not_found", _("no such payment")
        WRONG_PAYMENT = "wrong_payment", _("about another payment")
        AMOUNT_MISMATCH = "amount_mismatch", _("wrong amount: flagged for an agent")
        SUCCEEDED_APPLIED = "succeeded:applied", _("success: payment settled")
        SUCCEEDED_NEEDS_REFUND = "succeeded:needs_refund", _("success: part to refund")
        SUCCEEDED_ALREADY_DONE = "succeeded:already_done", _("success: already settled")
        SUCCEEDED_FLAGGED = "succeeded:flagged", _("success: flagged for an agent")
        FAILED_APPLIED = "failed:applied", _("failure: payment failed")
        FAILED_ALREADY_DONE = "failed:already_done", _("failure: nothing to change")
        FAILED_FLAGGED = "failed:flagged", _("failure: flagged for an agent")
        REVIEW_FLAGGED = "review:flagged", _("flagged for an agent")
        PENDING = "pending", _("still pending at the bank")
        NOTHING_YET = "nothing_yet", _("the bank has nothing on it yet")
        # Transfers and statement lines
        MATCHED = "matched", _("matched to a payment")
        MATCHED_LATE = "matched_late", _("matched to a payment after it expired or was cancelled")
        UNMATCHED = "unmatched", _("no payment found")
        WRONG_AMOUNT = "wrong_amount", _("wrong amount")
        NEEDS_REFUND = "needs_refund", _("money to give back")
        FOREIGN_ACCOUNT = "foreign_account", _("another account")
        IGNORED = "ignored", _("not a credit")
        DUPLICATE = "duplicate", _("already recorded")
        REJECTED = "rejected", _("rejected")
        # Collection API
        ANSWERED = "answered", _("answered")
        ACCEPTED = "accepted", _("payment recorded")
        APPLIED = "applied", _("applied")
        ALREADY_DONE = "already_done", _("already done")
        REPEAT = "repeat", _("repeated request")
        UNAUTHORIZED = "unauthorized", _("not authorised")
        MALFORMED_REQUEST = "malformed_request", _("malformed request")
        INVALID_REQUEST = "invalid_request", _("invalid request")
        INVALID_CUSTOMER_CODE = "invalid_customer_code", _("invalid customer code")
        CUSTOMER_NOT_FOUND = "customer_not_found", _("no such customer")
        BILL_NOT_FOUND = "bill_not_found", _("no such bill")
        BILL_ALREADY_PAID = "bill_already_paid", _("bill already paid")
        NOTHING_TO_PAY = "nothing_to_pay", _("nothing to pay")
        INVALID_PARTNER = "invalid_partner", _("partner cannot collect")
        INVALID_TRANSITION = "invalid_transition", _("payment cannot change now")
        TRANSACTION_ID_REUSED = "transaction_id_reused", _("transaction id reused")
        REQUEST_IN_PROGRESS = "request_in_progress", _("request in progress")
        TRANSACTION_NOT_FOUND = "transaction_not_found", _("no such transaction")
        REVERSAL_WINDOW_CLOSED = "reversal_window_closed", _("too late to reverse")

    partner = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="messages",
        verbose_name=_("partner"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    dedupe_key = models.CharField(_("dedupe key"), max_length=200)
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    body = models.TextField(_("body"), blank=True)
    signature_valid = models.BooleanField(_("signature valid"), null=True)
    # Indexed by inbox_payment_received, whose first column it is.
    payment = models.ForeignKey(
        Payment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="messages",
        verbose_name=_("payment"),
        db_index=False,
    )
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=64, blank=True, choices=Outcome.choices)
    outcome_detail = models.TextField(_("outcome detail"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("processing attempts"), default=0)
    # When an applier last failed on it: the next try waits INBOX_RETRY_AFTER.
    last_enqueued_at = models.DateTimeField(_("last failed attempt at"), null=True, blank=True)
    # What we answered, so a repeat of the same request gets the same answer.
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True)
    response_body = models.JSONField(_("response body"), null=True, blank=True)

    class Meta:
        verbose_name = _("inbound message")
        verbose_name_plural = _("inbound messages")
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["dedupe_key"], name="inbox_dedupe_key")]
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=Q(processed_at__isnull=True),
                name="inbox_unprocessed",
            ),
            models.Index(fields=["partner", "received_at"], name="inbox_partner_received"),
            models.Index(fields=["payment", "received_at"], name="inbox_payment_received"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.dedupe_key}"


class BankTransfer(models.Model):
    """A credit to the utility's account, from a transfer notification or a statement line.

    `external_id` is the bank's own reference of the credit (a notification's `referenceCode`,
    a statement's `transaction_id`), so the same money announced twice is one row.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", _("received, not yet matched")
        MATCHED = "matched", _("matched to a payment")
        UNMATCHED = "unmatched", _("no payment reference found")
        WRONG_AMOUNT = "wrong_amount", _("amount differs from the payment")
        NEEDS_REFUND = "needs_refund", _("payment already settled")
        IGNORED = "ignored", _("not a credit")
        RESOLVED = "resolved", _("resolved by an agent")
        # All of it went to a customer's bills through `CreditUse` rows (an agent's decision).
        APPLIED = "applied", _("applied to bills by an agent")

    class Source(models.TextChoices):
        WEBHOOK = "webhook", _("transfer notification")
        STATEMENT = "statement", _("bank statement")

    partner = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="transfers",
        verbose_name=_("receiving bank"),
    )
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    external_id = models.CharField(_("bank reference"), max_length=100)
    account_number = models.CharField(_("account"), max_length=32, blank=True)
    amount = models.BigIntegerField(_("amount (VND)"))
    content = models.TextField(_("transfer note"), blank=True)
    occurred_at = models.DateTimeField(_("occurred at"))
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RECEIVED
    )
    reason = models.TextField(_("reason"), blank=True)
    payment = models.ForeignKey(
        Payment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="transfers",
        verbose_name=_("payment"),
    )
    message = models.ForeignKey(
        InboundMessage,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="transfers",
        verbose_name=_("inbound message"),
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("resolved by"),
    )
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)

    class Meta:
        verbose_name = _("bank transfer")
        verbose_name_plural = _("bank transfers")
        ordering = ["-occurred_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account_number", "external_id"], name="transfer_unique_external_id"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "occurred_at"], name="transfer_status_time"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} {self.amount} {self.status}"


class CreditUse(models.Model):
    """Money we held that an agent put towards a customer's unpaid bills: part or all of a bank
    transfer kept for an agent, or of what a payment owed back, and the payment it paid them
    with (`payments.services.credit_apply`).

    The ledger of held money: a transfer still holds its amount less its uses; a payment's
    `refund_amount` is lowered by what it gave, so its amount is what its bills took, what it
    owes back and what it gave here (`payments.integrity`).
    """

    payment = models.ForeignKey(
        Payment,
        on_delete=models.PROTECT,
        related_name="credits_in",
        verbose_name=_("payment it paid"),
    )
    transfer = models.ForeignKey(
        BankTransfer,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="uses",
        verbose_name=_("bank transfer"),
    )
    source = models.ForeignKey(
        Payment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credits_out",
        verbose_name=_("payment that owed it back"),
    )
    amount = models.BigIntegerField(_("amount (VND)"))
    at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        verbose_name = _("use of held money")
        verbose_name_plural = _("uses of held money")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_use_amount_positive"),
            models.CheckConstraint(
                condition=Q(transfer__isnull=False, source__isnull=True)
                | Q(transfer__isnull=True, source__isnull=False),
                name="credit_use_one_source",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.transfer_id or self.source_id} -> {self.payment_id} {self.amount}"


class IdempotencyKey(models.Model):
    """A client's `Idempotency-Key`, claimed under a unique constraint with the first answer."""

    scope = models.CharField(_("scope"), max_length=40)
    key = models.CharField(_("key"), max_length=255)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    response_status = models.PositiveSmallIntegerField(_("response status"))
    response_body = models.JSONField(_("response body"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_once"),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"

    @classmethod
    def claim(cls, *, scope: str, key: str, fingerprint: str) -> IdempotencyKey:
        """Claim `key` before doing the work, its answer written once done: a concurrent request
        with the same key waits on the unique index until this transaction ends, then fails
        with IntegrityError and answers what this one did."""
        return cls.objects.create(
            scope=scope, key=key, fingerprint=fingerprint, response_status=0, response_body={}
        )

    @staticmethod
    def fingerprint_of(request: dict[str, Any]) -> str:
        """What a request asked for, so a key reused for another request is told apart."""
        canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


class SettlementReport(models.Model):
    """A partner's end-of-day settlement file compared with what the portal recorded."""

    partner = models.ForeignKey(
        Partner, on_delete=models.PROTECT, related_name="reports", verbose_name=_("partner")
    )
    business_date = models.DateField(_("business date"))
    source_name = models.CharField(_("file"), max_length=255)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    matched = models.PositiveIntegerField(_("matched"), default=0)
    missing_ours = models.PositiveIntegerField(_("missing on our side"), default=0)
    missing_theirs = models.PositiveIntegerField(_("missing on theirs"), default=0)
    amount_differences = models.PositiveIntegerField(_("amount differences"), default=0)
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        verbose_name = _("settlement report")
        verbose_name_plural = _("settlement reports")
        ordering = ["-business_date", "partner"]

    def __str__(self) -> str:
        return f"{self.partner.code} {self.business_date}"

    @property
    def is_clean(self) -> bool:
        return not (self.missing_ours or self.missing_theirs or self.amount_differences)


class ReminderChannel(models.TextChoices):
    EMAIL = "email", _("e-mail")
    SMS = "sms", _("SMS")


class ReminderOptOut(models.Model):
    """A customer who asked for no more reminders on one channel (the link in every message);
    receipts of their own payments still go."""

    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="reminder_opt_outs",
        verbose_name=_("customer"),
        db_index=False,  # the unique constraint's first column
    )
    channel = models.CharField(_("channel"), max_length=8, choices=ReminderChannel.choices)
    at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        verbose_name = _("reminder opt-out")
        verbose_name_plural = _("reminder opt-outs")
        constraints = [
            models.UniqueConstraint(fields=["customer", "channel"], name="reminder_opt_out_once")
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.channel}"


class ReminderMessage(models.Model):
    """One reminder to one customer on one channel on one day, naming one or more of their
    bills (`ReminderLine`). Queued and sent by `payments.reminders`."""

    class Kind(models.TextChoices):
        NEW_BILL = "new_bill", _("new bill")
        DUE_SOON = "due_soon", _("due soon")
        OVERDUE = "overdue", _("overdue")

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        SENDING = "sending", _("sending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")
        SKIPPED = "skipped", _("skipped")

    customer = models.ForeignKey(
        Customer,
        on_delete=models.PROTECT,
        related_name="reminder_messages",
        verbose_name=_("customer"),
        db_index=False,  # the unique constraint's first column
    )
    channel = models.CharField(_("channel"), max_length=8, choices=ReminderChannel.choices)
    # The kind it was queued for; bills added later the same day keep their own in their line.
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    # The Vietnam calendar day it goes out: one message per customer, channel and day.
    day = models.DateField(_("day"))
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.QUEUED
    )
    # Why it was skipped or failed (the last error of a retried one).
    reason = models.TextField(_("reason"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    not_before = models.DateTimeField(_("not before"))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    # What went, to whom: the console shows it to an agent answering a call about it.
    to = models.CharField(_("to"), max_length=254, blank=True)
    text = models.TextField(_("text"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")
        ordering = ["-day", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "channel", "day"], name="reminder_one_per_customer_day"
            )
        ]
        indexes = [
            models.Index(
                fields=["not_before", "id"], condition=Q(status="queued"), name="reminder_due_order"
            )
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.channel} {self.day} {self.status}"


class ReminderLine(models.Model):
    """A bill a reminder names, and why: a bill is reminded of once per kind and channel."""

    message = models.ForeignKey(
        ReminderMessage,
        on_delete=models.CASCADE,
        related_name="lines",
        verbose_name=_("reminder"),
    )
    bill = models.ForeignKey(
        Bill,
        on_delete=models.PROTECT,
        related_name="reminder_lines",
        verbose_name=_("bill"),
        db_index=False,  # the unique constraint's first column
    )
    kind = models.CharField(_("kind"), max_length=10, choices=ReminderMessage.Kind.choices)
    channel = models.CharField(_("channel"), max_length=8, choices=ReminderChannel.choices)

    class Meta:
        verbose_name = _("reminded bill")
        verbose_name_plural = _("reminded bills")
        constraints = [
            models.UniqueConstraint(
                fields=["bill", "kind", "channel"], name="reminder_bill_once_per_kind"
            )
        ]

    def __str__(self) -> str:
        return f"{self.bill_id} {self.kind} {self.channel}"
