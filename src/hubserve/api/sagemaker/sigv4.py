"""SigV4 verification of SageMaker requests (control plane and runtime), as boto3 and the AWS CLI sign them.

The access key id names the token (its id) and the secret access key is the token's secret part;
the bootstrap ``--token`` keeps working as the secret under any other key id. The cheap parts
(header shape, key id, date window, region and service of the credential scope) are checked by
``parse`` and ``check_scope`` before the body is read; the signature itself (``verify``) covers
the body, so it needs it. The signature is recomputed with botocore's own signer over the request
as received (its signed headers, path, query and body), so the canonicalisation is exactly the client's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import re

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from hubserve.api.sagemaker.errors import SageMakerApiError

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/]{1,128})/(?P<date>\d{8})/(?P<region>[^/]{1,64})/(?P<service>[^/]{1,64})"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;\-]{1,2000}),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_REGION = re.compile(r"^[a-z]{2,}(-[a-z0-9]+){1,4}$")  # us-east-1, eu-west-1, us-gov-west-1, cn-north-1
SERVICE = "sagemaker"  # both the control plane and sagemaker-runtime sign as "sagemaker"
MAX_SKEW = dt.timedelta(minutes=5)  # a captured request cannot be replayed later than this


@dataclasses.dataclass(frozen=True)
class Credential:
    """The parts of a SigV4 Authorization header."""

    key: str
    date: str
    region: str
    service: str
    signed: tuple[str, ...]
    signature: str


def parse(authorization: str | None) -> Credential | None:
    """The credential of a SigV4 Authorization header, or None when it is not one."""
    match = _AUTH.match((authorization or "").strip())
    if match is None:
        return None
    return Credential(
        match["key"], match["date"], match["region"], match["service"], tuple(match["signed"].split(";")),
        match["signature"],
    )  # fmt: skip


def is_sigv4(authorization: str | None) -> bool:
    return (authorization or "").lstrip().startswith("AWS4-HMAC-SHA256")


def region_of(authorization: str | None) -> str | None:
    """The region of a SigV4 Authorization header's credential scope, or None."""
    credential = parse(authorization)
    return credential.region if credential else None


def check_scope(credential: Credential, headers: dict[str, str], now: dt.datetime | None = None) -> None:
    """Raise a 401 SageMakerApiError unless the date is within ``MAX_SKEW`` and region and service are right.

    Needs no body: the authentication layer calls it before reading one.
    """
    amz_date = headers.get("x-amz-date", "")
    try:
        signed_at = dt.datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise _invalid("X-Amz-Date is missing or malformed.") from None
    now = now or dt.datetime.now(dt.timezone.utc)
    if abs(now - signed_at) > MAX_SKEW or not amz_date.startswith(credential.date):
        raise _invalid("Signature expired or not yet valid: X-Amz-Date is more than 5 minutes from the server's time.")
    if credential.service != SERVICE:
        raise _invalid(f"The credential scope names service '{credential.service}'; sign for '{SERVICE}'.")
    if not _REGION.match(credential.region):
        raise _invalid(f"The credential scope names no valid region ('{credential.region}').")
    signed = credential.signed
    if "host" not in signed or any(name not in headers for name in signed):
        raise _invalid("SignedHeaders must include host and name only headers the request carries.")


def verify(
    secret: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    now: dt.datetime | None = None,
) -> None:
    """Raise a 401 SageMakerApiError unless the request is SigV4-signed with ``secret``, fresh and well scoped.

    ``headers`` are the received headers with lower-case names; ``url`` is scheme, host, path and query.
    """
    credential = parse(headers.get("authorization"))
    if credential is None:
        raise SageMakerApiError(
            "MissingAuthenticationTokenException",
            "The request is not SigV4-signed. Sign it with the token's id as aws_access_key_id and its secret "
            "as aws_secret_access_key.",
            401,
        )
    check_scope(credential, headers, now)
    content_sha = headers.get("x-amz-content-sha256")
    if content_sha is not None and content_sha != hashlib.sha256(body).hexdigest():
        raise _invalid("X-Amz-Content-SHA256 does not match the body (an unsigned payload is refused).")
    amz_date = headers["x-amz-date"]
    request = AWSRequest(method=method, url=url, data=body, headers={name: headers[name] for name in credential.signed})
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(credential.key, secret), credential.service, credential.region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, credential.signature):
        raise _invalid(
            "The request signature we calculated does not match the signature you provided. "
            "Check the token's id (aws_access_key_id) and secret (aws_secret_access_key)."
        )


def _invalid(message: str) -> SageMakerApiError:
    return SageMakerApiError("InvalidSignatureException", message, 401)
