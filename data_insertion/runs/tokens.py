"""API tokens: random, shown once, stored as their SHA-256 (a token has 256 bits of entropy, so
a fast hash is enough: there is no password to guess). DS_API_TOKEN in the environment is one
more valid token, for a deployment that sets it from a secret store."""

import hashlib
import hmac
import os
import secrets

from django.utils import timezone

from .models import ApiToken

TOKEN_ENVIRONMENT_VARIABLE = "DS_API_TOKEN"


def create_token(name: str) -> str:
    """A new token called `name`; the caller shows it once, only its hash is kept."""
    token = secrets.token_urlsafe(32)
    ApiToken.objects.create(name=name, token_hash=_hash(token))
    return token


def is_valid_token(token: str) -> bool:
    configured = os.environ.get(TOKEN_ENVIRONMENT_VARIABLE, "")
    if configured and hmac.compare_digest(token.encode(), configured.encode()):
        return True
    return bool(
        ApiToken.objects.filter(token_hash=_hash(token)).update(last_used_at=timezone.now())
    )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
