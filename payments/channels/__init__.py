"""Protocols at the edge: each channel reads and answers its partners' messages; the applier and the ledger do the rest."""  # noqa: E501
