"""ZaloPay wallet payments (API v2): the protocol, its Django side (the channel) and the callback
view."""
