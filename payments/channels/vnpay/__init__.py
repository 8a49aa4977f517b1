"""VNPay 2.1.0 redirect payments: the protocol, its Django side (the gateway) and the IPN view."""
