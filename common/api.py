"""The one JSON error shape of the contract: {"error": {"code", "message", "fields"}}.

Views raise `ApiError` for domain errors; DRF's own exceptions (validation, parse, 404, 405,
throttling) are converted by `exception_handler`, so no error leaves in another shape.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """A domain error answered with the contract's shape."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status_code: int = status.HTTP_400_BAD_REQUEST,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_response(
    code: str, message: str, status_code: int, fields: dict[str, Any] | None = None
) -> JsonResponse:
    """The same shape for plain Django views (callbacks, handlers outside DRF)."""
    return JsonResponse(error_body(code, message, fields), status=status_code)


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(key): _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _describe(exc: Exception) -> tuple[str, str, dict[str, Any]]:
    if isinstance(exc, ApiError):
        return exc.error_code, exc.message, exc.fields
    if isinstance(exc, exceptions.ParseError):
        return "malformed_request", _("The request body is not valid JSON."), {}
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            fields = _flatten(detail)
            non_field = fields.pop("non_field_errors", None)
            message = (
                non_field[0]
                if isinstance(non_field, list) and non_field
                else _("Some fields are missing or invalid.")
            )
            return "invalid_request", message, fields
        return "invalid_request", str(_flatten(detail)), {}
    if isinstance(exc, exceptions.Throttled):
        return "rate_limited", _("Too many requests. Please wait a moment and try again."), {}
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        return "unauthorized", _("Authentication is required."), {}
    if isinstance(exc, exceptions.PermissionDenied):
        return "forbidden", _("You are not allowed to do this."), {}
    if isinstance(exc, exceptions.NotFound):
        return "not_found", _("Not found."), {}
    if isinstance(exc, exceptions.MethodNotAllowed):
        return "method_not_allowed", _("This method is not allowed here."), {}
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return "unsupported_media_type", _("Send the body as application/json."), {}
    if isinstance(exc, exceptions.NotAcceptable):
        return "not_acceptable", _("This resource is only available as JSON."), {}
    return "error", str(getattr(exc, "detail", exc)), {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handler answers it, also as JSON
    code, message, fields = _describe(exc)
    response.data = error_body(code, message, fields)
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        response["Retry-After"] = str(max(1, math.ceil(wait)))
    if isinstance(exc, ApiError):
        for name, value in exc.headers.items():
            response[name] = value
    return response


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/callbacks/"))
