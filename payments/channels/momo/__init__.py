"""MoMo wallet payments (API v2, captureWallet): the protocol, its Django side (the channel) and
the IPN view."""
