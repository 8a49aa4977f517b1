"""The sandbox bank: a simulated partner bank for development and tests (never in production).

Mounted at /sandbox/ when SANDBOX_BANK_ENABLED (on with DEBUG). It speaks to the portal only over
HTTP and the protocols, with its own implementation of them, and imports nothing from the
portal's apps:

- /sandbox/paymentv2/vpcpay.html  the payment page behind PARTNER_SANDBOX_PAY_URL: checks the
  signed VNPay 2.1.0 request, shows merchant, amount and reference, Approve or Decline (with a
  failure code), then sends the browser back to vnp_ReturnUrl with signed parameters;
- its outbox: the IPN of each decision, sent (GET SANDBOX_PORTAL_URL/callbacks/SANDBOX/ipn/) by
  `python manage.py sandbox_bank` until the portal answers 00 or 02; per payment (or by
  SANDBOX_IPN_MODE) it can be sent late (SANDBOX_IPN_DELAY_SECONDS) or dropped, to watch the
  portal's poller recover a lost notification;
- /sandbox/merchant_webapi/api/transaction  querydr (POST JSON, signed answers);
- /sandbox/qr/  "pay this QR": a VietQR payload (or account, amount and note) becomes a
  SePay-shaped transfer notification to SANDBOX_PORTAL_URL/callbacks/transfers/;
- /sandbox/  its back office: recent payments and what happened to each notification.
"""
