"""VietQR (NAPAS QR on EMVCo): the payload and its CRC, and a payment's QR images."""
