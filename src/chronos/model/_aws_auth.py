"""AWS request signing and credentials for the Bedrock provider, through botocore.

Why botocore and not our own: SigV4 and the credential chain (environment, shared config and
credentials files with profiles, SSO, container and instance roles, refreshing role
credentials) are AWS's to get right; botocore is the reference. Only the signing is borrowed:
the request itself is an httpx request like every other provider's, signed over the exact
URL, host and body httpx sends.

botocore's signer logs the canonical request at DEBUG, and with temporary credentials that
holds the session token; a filter on its logger redacts that line.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Final

import httpx

from chronos.errors import ConfigurationError

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
    from botocore.exceptions import BotoCoreError
    from botocore.session import Session
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "chronos.model.bedrock needs botocore: pip install 'chronos-stream[bedrock]'"
    ) from exc

__all__ = [
    "Credentials",
    "ReadOnlyCredentials",
    "RefreshableCredentials",
    "Session",
    "resolve_credentials",
    "resolve_region",
    "sign",
]

# Only what no proxy rewrites is signed; x-amz-date (and the token) are added by the signer.
_SIGNED_HEADERS: Final = ("host", "content-type")
_AUTH_HEADERS: Final = ("authorization", "x-amz-date", "x-amz-security-token")
_SESSION_TOKEN_LINE: Final = re.compile(r"(?im)^(x-amz-security-token:).*$")


class _RedactSessionToken(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SESSION_TOKEN_LINE.sub(r"\1REDACTED", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


logging.getLogger("botocore.auth").addFilter(_RedactSessionToken())


def resolve_region(session: Session, region: str | None) -> str:
    """`region`, else `AWS_REGION`, else botocore's (`AWS_DEFAULT_REGION`, the profile's)."""
    # botocore reads AWS_DEFAULT_REGION and the profile; the other SDKs read AWS_REGION.
    resolved = region or os.environ.get("AWS_REGION") or session.get_config_variable("region")
    if not resolved:
        raise ConfigurationError(
            "bedrock: no AWS region; pass region= or set AWS_REGION or AWS_DEFAULT_REGION"
            " (or a profile's region)"
        )
    return str(resolved)


def resolve_credentials(session: Session) -> Credentials:
    """The credentials botocore's standard chain finds, or a `ConfigurationError`."""
    try:
        credentials = session.get_credentials()
    except (BotoCoreError, ValueError) as exc:  # e.g. a malformed profile or container URI
        raise ConfigurationError(f"bedrock: cannot load AWS credentials ({exc})") from exc
    if credentials is None:
        raise ConfigurationError(
            "bedrock: no AWS credentials found (environment, shared config and credentials"
            " files, container or instance role); or set AWS_BEARER_TOKEN_BEDROCK"
        )
    return credentials


def sign(
    request: httpx.Request, credentials: ReadOnlyCredentials, *, service: str, region: str
) -> None:
    """Add SigV4 headers (`authorization`, `x-amz-date`, the token) to an httpx request."""
    signed = AWSRequest(
        method=request.method,
        url=str(request.url),
        data=request.content,
        headers={name: request.headers[name] for name in _SIGNED_HEADERS},
    )
    SigV4Auth(credentials, service, region).add_auth(signed)
    for name in _AUTH_HEADERS:
        if name in signed.headers:
            request.headers[name] = signed.headers[name]
