"""QR codes for tickets, through segno (a maintained encoder; none is written here), and
the one writer of ticket files (their layout is ticket_print's).

Ticket files hold admission codes, so they are written like secrets: a folder we create is
0700, each file is 0600, named by ticket id (a file listing never shows a code), and written
to a fresh temporary name (O_CREAT|O_EXCL|O_NOFOLLOW) that is then renamed into place, so
a symbolic link planted under the final name is replaced, never followed.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from typing import Any

from . import codes
from .errors import invalid

FORMATS = ("png", "svg", "pdf")
DIR_MODE = 0o700
FILE_MODE = 0o600
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def make(code: str) -> Any:
    """The segno QR code of a canonical code (it holds the grouped form, as always)."""
    import segno

    return segno.make(codes.pretty(code), error="m")


def terminal_text(code: str) -> str:
    """The QR code as text for a terminal (two rows per line)."""
    out = io.StringIO()
    make(code).terminal(out=out, compact=True, border=2)
    return out.getvalue()


def file_name(ticket_id: int, fmt: str) -> str:
    """A ticket's file name: its id only; the code is the secret that admits."""
    return f"ticket-{int(ticket_id)}.{fmt}"


def write(data: bytes, directory: str, *, fmt: str, ticket_id: int) -> str:
    """Write one ticket file's bytes as `ticket-ID.FMT` in `directory`; returns its path."""
    if fmt not in FORMATS:
        raise invalid(f"format must be one of {', '.join(FORMATS)}")
    path = os.path.join(directory, file_name(ticket_id, fmt))
    try:
        _write_private(directory, file_name(ticket_id, fmt), data)
    except OSError as exc:  # full disk, folder removed meanwhile: one clear line
        raise invalid(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _write_private(directory: str, name: str, data: bytes) -> None:
    """Create a new 0600 file under a random name (never following or reusing anything
    there), then rename it over `name`: a link planted at `name` is replaced, its target
    untouched, and a reader never sees half an image."""
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, _CREATE, FILE_MODE, dir_fd=dir_fd)
        try:
            os.fchmod(fd, FILE_MODE)  # whatever the umask says
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):  # never leave a half-written temporary behind
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    finally:
        os.close(dir_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def check_dir(directory: str) -> str:
    """Refuse a folder that could not be used, without creating anything: run before a
    sale, so a refused sale leaves no folder behind and a sale is never made for a folder
    that cannot be written."""
    if "\0" in directory:
        raise invalid("folder name contains a NUL byte")
    if not directory:
        raise invalid("folder name must not be empty")
    existing = os.path.abspath(directory)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise invalid(f"cannot create {directory}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise invalid(f"cannot write to {existing}")
    return directory


def ready_dir(directory: str) -> str:
    """Make sure the folder exists and is writable; every folder created here is 0700."""
    check_dir(directory)
    missing = []
    path = os.path.abspath(directory)
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        _make_private_dir(folder, directory)
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise invalid(f"cannot write to {directory}")
    return directory


def _make_private_dir(folder: str, asked: str) -> None:
    try:
        os.mkdir(folder, DIR_MODE)
    except FileExistsError:  # made meanwhile by someone else: checked as a folder below
        return
    except OSError as exc:
        raise invalid(f"cannot create {asked}: {exc.strerror}") from None
    os.chmod(folder, DIR_MODE)  # whatever the umask says
