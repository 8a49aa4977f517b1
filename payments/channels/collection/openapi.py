"""The collection API's own OpenAPI document: only its endpoints, with its security scheme."""

from __future__ import annotations

PREFIX = "/api/v1/collection/"


def collection_endpoints_only(endpoints: list, **kwargs: object) -> list:
    """Keep the three operations; leave out the public API and the schema and docs views."""
    return [
        endpoint
        for endpoint in endpoints
        if endpoint[0].startswith(PREFIX)
        and not endpoint[0].startswith((f"{PREFIX}schema/", f"{PREFIX}docs/"))
    ]
