"""URIs as messages, logs and records may show them: without the password of their user part."""

from __future__ import annotations

from urllib.parse import urlparse


def redacted(url: str) -> str:
    """`url` without the password of its user part: postgresql://optuna:***@host/db, http://user:***@host:5000."""
    try:
        parts = urlparse(url)
        password = parts.password
    except ValueError:
        return url
    if password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{password}@", ":***@", 1)).geturl()
