from __future__ import annotations

import pytest

# Fake AWS credentials for the Bedrock provider, and nothing else of AWS's chain: no
# developer's ~/.aws files, no instance-metadata lookups over the network.
AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLECHRONOS01",
    "AWS_SECRET_ACCESS_KEY": "chronos-fake-secret-Xq3Lr7Vt9Np2Mk8Zb4Wc",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/chronos-test-aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/chronos-test-aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
