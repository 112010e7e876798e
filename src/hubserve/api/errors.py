"""Every failure leaves the server as the same JSON shape: {"error": {"type", "message", "details"?}}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hubserve.errors import HubserveError, SpecError, ValidationError


def error_response(error: HubserveError, hf: bool = False) -> JSONResponse:
    """hubserve's error body; ``hf``: Inference Endpoints' ``{"error": "<message>"}`` (what huggingface_hub prints)."""
    headers = {"x-amzn-ErrorType": error.type, **error.headers}
    body = {"error": error.message} if hf else error.to_dict()
    return JSONResponse(body, status_code=error.status, headers=headers)


def field_details(errors: list[Any]) -> list[dict[str, str]]:
    """Pydantic errors as [{"field": "compute.memory_mb", "message": ...}] without the 'body' prefix."""
    details = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
        # Discriminated unions add the variant name ("serverless") to the path; users never wrote it.
        location = [part for part in location if part not in ("serverless", "dedicated")]
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        details.append({"field": ".".join(location) or "(body)", "message": message})
    return details


def spec_error(errors: list[Any]) -> SpecError:
    details = field_details(errors)
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return SpecError(f"The endpoint spec is invalid: {summary}", details=details)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HubserveError)
    async def _hubserve_error(_: Request, error: HubserveError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = list(error.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(ValidationError("The request body is not valid JSON; send a JSON object."))
        if any(tuple(e.get("loc", ())) == ("body",) for e in errors):
            return error_response(
                ValidationError("The request body must be a JSON object sent with 'Content-Type: application/json'.")
            )
        return error_response(spec_error(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400 and error.detail == "There was an error parsing the body":  # FastAPI's words
            return error_response(ValidationError(
                "The request body could not be parsed: send a JSON object encoded as UTF-8, not nested too deeply."
            ))  # fmt: skip
        names = {404: "NotFound", 405: "MethodNotAllowed"}
        failure = HubserveError(str(error.detail))
        failure.status, failure.type = error.status_code, names.get(error.status_code, "HTTPError")
        return error_response(failure)
