"""What the sandbox bank remembers: its payment attempts, its outbox, the queries it answered.

These tables belong to the simulated bank. The portal never reads them; the bank never reads
the portal's: the two talk over HTTP only.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import pgettext_lazy


class BankTransaction(models.Model):
    """One payment a merchant sent a customer to pay on the bank's page."""

    class State(models.TextChoices):
        OPEN = "open", pgettext_lazy("sandbox bank", "open")
        APPROVED = "approved", pgettext_lazy("sandbox bank", "approved")
        DECLINED = "declined", pgettext_lazy("sandbox bank", "declined")

    class IpnMode(models.TextChoices):
        DELIVER = "deliver", pgettext_lazy("sandbox bank", "deliver now")
        DELAY = "delay", pgettext_lazy("sandbox bank", "deliver late")
        DROP = "drop", pgettext_lazy("sandbox bank", "never deliver")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tmn_code = models.CharField(max_length=20)
    txn_ref = models.CharField(max_length=100)
    # As the merchant sent it: hundredths of a dong.
    amount = models.BigIntegerField()
    order_info = models.CharField(max_length=255)
    order_type = models.CharField(max_length=40, blank=True)
    locale = models.CharField(max_length=4, default="vn")
    return_url = models.URLField(max_length=1000)
    ip_addr = models.CharField(max_length=64, blank=True)
    create_date = models.CharField(max_length=14)
    expire_date = models.CharField(max_length=14, blank=True)
    bank_code = models.CharField(max_length=20, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    response_code = models.CharField(max_length=2, blank=True)
    transaction_status = models.CharField(max_length=2, blank=True)
    transaction_no = models.CharField(max_length=20, blank=True)
    bank_tran_no = models.CharField(max_length=40, blank=True)
    card_type = models.CharField(max_length=10, blank=True)
    pay_date = models.CharField(max_length=14, blank=True)
    ipn_mode = models.CharField(max_length=10, choices=IpnMode.choices, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A merchant's reference names one payment at this bank.
            models.UniqueConstraint(fields=["tmn_code", "txn_ref"], name="sandbox_txn_ref_once"),
            models.UniqueConstraint(
                fields=["transaction_no"],
                condition=~Q(transaction_no="") & ~Q(transaction_no="0"),
                name="sandbox_transaction_no_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tmn_code}/{self.txn_ref} {self.state}"


class WalletOrder(models.Model):
    """An order a merchant opened at one of the sandbox's wallets (MoMo, ZaloPay) with a create
    call: what the wallet's pay page shows, and what its status query answers."""

    class Wallet(models.TextChoices):
        MOMO = "momo", "MoMo"
        ZALOPAY = "zalopay", "ZaloPay"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    wallet = models.CharField(max_length=10, choices=Wallet.choices)
    # The merchant as the wallet knows it: MoMo's partnerCode, ZaloPay's app_id.
    merchant = models.CharField(max_length=50)
    # The merchant's order: MoMo's orderId, ZaloPay's app_trans_id.
    order_id = models.CharField(max_length=100)
    # MoMo's requestId of the create call: the same request again gets the same answer.
    request_id = models.CharField(max_length=64, blank=True)
    amount = models.BigIntegerField()  # whole dong
    order_info = models.CharField(max_length=255)
    redirect_url = models.URLField(max_length=1000)
    notify_url = models.URLField(max_length=1000)
    # What else the merchant sent that a later message repeats (extraData, app_user, ...).
    extra = models.JSONField(default=dict, blank=True)
    # The pay page's token (ZaloPay's zp_trans_token).
    token = models.CharField(max_length=64, unique=True)
    state = models.CharField(
        max_length=10, choices=BankTransaction.State.choices, default=BankTransaction.State.OPEN
    )
    # MoMo's resultCode, ZaloPay's return status.
    result_code = models.CharField(max_length=8, blank=True)
    # The wallet's transaction number (MoMo's transId, ZaloPay's zp_trans_id).
    trans_id = models.CharField(max_length=20, blank=True)
    ipn_mode = models.CharField(max_length=10, choices=BankTransaction.IpnMode.choices, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A merchant's order id names one order at the wallet.
            models.UniqueConstraint(
                fields=["wallet", "merchant", "order_id"], name="sandbox_wallet_order_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.wallet} {self.merchant}/{self.order_id} {self.state}"


class Notification(models.Model):
    """The bank's outbox: a server-to-server message it keeps sending until it is acknowledged."""

    class Kind(models.TextChoices):
        IPN = "ipn", pgettext_lazy("sandbox bank", "payment notification (IPN)")
        TRANSFER = "transfer", pgettext_lazy("sandbox bank", "transfer notification")
        MOMO_IPN = "momo_ipn", pgettext_lazy("sandbox bank", "MoMo notification (IPN)")
        ZALOPAY_CALLBACK = "zalopay", pgettext_lazy("sandbox bank", "ZaloPay callback")

    class State(models.TextChoices):
        PENDING = "pending", pgettext_lazy("sandbox bank", "waiting to be sent")
        DELIVERED = "delivered", pgettext_lazy("sandbox bank", "acknowledged")
        DROPPED = "dropped", pgettext_lazy("sandbox bank", "dropped on purpose")
        GAVE_UP = "gave_up", pgettext_lazy("sandbox bank", "given up after retries")

    kind = models.CharField(max_length=10, choices=Kind.choices)
    transaction = models.ForeignKey(
        BankTransaction,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
    )
    order = models.ForeignKey(
        WalletOrder,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
    )
    url = models.URLField(max_length=1000)
    # IPN: the signed query parameters; transfer, and the wallets': the JSON body.
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_answer = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state="pending"),
                name="sandbox_outbox_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.state}"


class QueryRequest(models.Model):
    """A querydr request id the bank has seen: the same id twice in a day is refused (94)."""

    tmn_code = models.CharField(max_length=20)
    request_id = models.CharField(max_length=32)
    day = models.DateField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tmn_code", "request_id", "day"], name="sandbox_request_id_daily"
            )
        ]

    def __str__(self) -> str:
        return f"{self.tmn_code} {self.request_id}"


class TextMessage(models.Model):
    """An SMS the portal handed to the sandbox playing its SMS gateway: what a household's phone
    would have shown. Only correctly signed requests are kept."""

    to = models.CharField(max_length=20)
    text = models.TextField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"SMS to {self.to}"
