"""What a database target names, and how it may be shown.

A target is a file path (SQLite) or a `postgresql://` / `postgres://` URL. The URL may carry
a password; it is never shown: every message, log line and audit row names the database by
`display(target)`. Nothing here imports a database driver.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

SCHEMES = ("postgresql://", "postgres://")
_SECRET_PARAMS = {"password", "passfile", "sslpassword", "sslkey"}


def is_postgres(target: str) -> bool:
    """True when `target` is a PostgreSQL URL rather than a file path."""
    return target[:13].lower().startswith(SCHEMES)


def display(target: str) -> str:
    """The target as it may be printed: a URL without its password (user, host, port and
    database name stay, so an operator can tell which server is meant)."""
    if not is_postgres(target):
        return target
    try:
        parts = urlsplit(target)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.partition(":")[0]
            netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
        query = parts.query
        if query:
            pairs = [
                (k, "***" if k.lower() in _SECRET_PARAMS else v)
                for k, v in parse_qsl(query, keep_blank_values=True)
            ]
            query = urlencode(pairs, safe="/*", quote_via=quote)
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return f"{target.partition(':')[0]}://(unparseable URL)"


def redact_text(text: str, target: str) -> str:
    """`text` (e.g. a driver's error message) with any password of `target` blanked out."""
    secrets: list[str] = []
    try:
        parts = urlsplit(target)
        if parts.password:
            secrets.append(parts.password)
        secrets += [
            v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in _SECRET_PARAMS
        ]
    except ValueError:
        return "(message withheld: the database URL could not be parsed)"
    if target in text:
        text = text.replace(target, display(target))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
