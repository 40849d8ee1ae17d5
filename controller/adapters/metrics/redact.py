"""URLs as they may appear in messages, status and logs: no credentials, no query string."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_url(url: str) -> str:
    """``scheme://host:port/path`` without user, password, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return f"{parts.scheme}://{netloc}{parts.path}".rstrip("/")
