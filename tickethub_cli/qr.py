"""QR codes for tickets, through segno (a maintained encoder; none is written here)."""

from __future__ import annotations

import io
import os
from typing import Any

from . import codes
from .errors import invalid

FORMATS = ("png", "svg")


def _make(code: str) -> Any:
    import segno

    return segno.make(codes.pretty(code), error="m")


def terminal_text(code: str) -> str:
    """The QR code as text for a terminal (two rows per line)."""
    out = io.StringIO()
    _make(code).terminal(out=out, compact=True, border=2)
    return out.getvalue()


def write(code: str, directory: str, *, fmt: str = "png", stem: str | None = None) -> str:
    """Write one printable image; returns its path."""
    if fmt not in FORMATS:
        raise invalid(f"format must be one of {', '.join(FORMATS)}")
    name = f"{stem or codes.pretty(code)}.{fmt}"
    path = os.path.join(directory, name)
    try:
        _make(code).save(path, scale=10, border=4, kind=fmt)
    except OSError as exc:  # full disk, folder removed meanwhile: one clear line
        raise invalid(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def ready_dir(directory: str) -> str:
    """Create the folder if needed and make sure we can write there, before anything is sold."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise invalid(f"cannot create {directory}: {exc.strerror}") from None
    except ValueError:  # a NUL byte in the name
        raise invalid("folder name contains a NUL byte") from None
    if not os.access(directory, os.W_OK):
        raise invalid(f"cannot write to {directory}")
    return directory


def export(tickets: list[dict[str, Any]], directory: str, *, fmt: str = "png") -> list[str]:
    """One image per ticket, named after order, ticket id and code."""
    ready_dir(directory)
    return [
        write(
            codes.canonical(t["code"]),
            directory,
            fmt=fmt,
            stem=f"order{t['order_id']}-ticket{t['id']}-{t['code']}",
        )
        for t in tickets
    ]
