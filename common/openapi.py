"""OpenAPI pieces shared by every API: the contract's error shape."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorDetail",
            fields={
                "code": serializers.CharField(help_text="snake_case error code"),
                "message": serializers.CharField(help_text="human-readable explanation"),
                "fields": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()),
                    help_text="per-field messages for invalid input",
                ),
            },
        )
    },
)

ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed or invalid request."),
    401: OpenApiResponse(ErrorSerializer, description="Missing or invalid credentials."),
    404: OpenApiResponse(ErrorSerializer, description="Not found."),
    405: OpenApiResponse(ErrorSerializer, description="Method not allowed."),
    409: OpenApiResponse(ErrorSerializer, description="Conflicts with the current state."),
    422: OpenApiResponse(ErrorSerializer, description="Well-formed but not acceptable."),
    429: OpenApiResponse(ErrorSerializer, description="Rate limited; see Retry-After."),
    502: OpenApiResponse(
        ErrorSerializer, description="The partner (a wallet) did not answer; try again later."
    ),
}


def public_endpoints_only(endpoints: list, **kwargs: object) -> list:
    """The public schema leaves out the collection API, which has its own (partners only)."""
    return [e for e in endpoints if not e[0].startswith("/api/v1/collection/")]
