"""What the payment-page channels share (VNPay 2.1.0, the MoMo and ZaloPay wallets): signing
helpers, the server-to-server HTTP call, what a checkout hands the household, and reading and
applying a partner's reports through the one settle path."""
