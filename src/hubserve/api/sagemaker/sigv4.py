"""SigV4 verification of control-plane requests, with the server's token as the secret key.

boto3 signs every request; when the server has a token, the SageMaker control plane accepts
only requests signed with it as ``aws_secret_access_key`` (any access key id). The signature is
recomputed with botocore's own signer over the request as received (its signed headers, path,
query and body), so the canonicalisation is exactly the client's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from hubserve.api.sagemaker.errors import SageMakerApiError

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;\-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
MAX_SKEW = dt.timedelta(minutes=15)  # as AWS: a captured request cannot be replayed later


def region_of(authorization: str | None) -> str | None:
    """The region of a SigV4 Authorization header's credential scope, or None."""
    match = _AUTH.match((authorization or "").strip())
    return match["region"] if match else None


def verify(
    secret: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    now: dt.datetime | None = None,
) -> None:
    """Raise a 403 SageMakerApiError unless the request is SigV4-signed with ``secret``.

    ``headers`` are the received headers with lower-case names; ``url`` is scheme, host, path and query.
    """
    match = _AUTH.match(headers.get("authorization", "").strip())
    if match is None:
        raise SageMakerApiError(
            "UnrecognizedClientException",
            "The request is not SigV4-signed. Sign it with the server's token as aws_secret_access_key.",
            403,
        )
    amz_date = headers.get("x-amz-date", "")
    try:
        signed_at = dt.datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise _invalid("X-Amz-Date is missing or malformed.") from None
    now = now or dt.datetime.now(dt.timezone.utc)
    if abs(now - signed_at) > MAX_SKEW or not amz_date.startswith(match["date"]):
        raise _invalid("Signature expired or not yet valid: X-Amz-Date is more than 15 minutes from the server's time.")
    content_sha = headers.get("x-amz-content-sha256")
    if content_sha is not None and content_sha != hashlib.sha256(body).hexdigest():
        raise _invalid("X-Amz-Content-SHA256 does not match the body.")
    signed = match["signed"].split(";")
    if "host" not in signed or any(name not in headers for name in signed):
        raise _invalid("SignedHeaders must include host and name only headers the request carries.")
    request = AWSRequest(method=method, url=url, data=body, headers={name: headers[name] for name in signed})
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(match["key"], secret), match["service"], match["region"])
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise _invalid(
            "The request signature we calculated does not match the signature you provided. "
            "Use the server's token as aws_secret_access_key."
        )


def _invalid(message: str) -> SageMakerApiError:
    return SageMakerApiError("InvalidSignatureException", message, 403)
