"""Small input checks shared by every service: ids, names, bounds, emails, card numbers."""

from __future__ import annotations

import re

from .errors import invalid, not_found, ref

MAX_NAME = 200
UNSAFE_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0 (ESC among them), DEL, C1 (CSI U+009B, OSC U+009D, ...)
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, overrides, isolates
    "\u2028\u2029]"  # line and paragraph separators: a line break by another name
)
"""Characters that steer a terminal or reorder what a reader sees rather than being text.
The one definition: input refuses them (`name`, `email`), output escapes them
(`render.safe_text`)."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.][^@\s]*$")
MAX_QUANTITY = 1000
MAX_CAPACITY = 10_000_000


def has_control(value: str) -> bool:
    return bool(UNSAFE_CHARS.search(value))


def has_surrogate(value: str) -> bool:
    """Lone surrogates: argv/env bytes that were not UTF-8, or a JSON "\\ud800" escape.
    No database, file or terminal can take them."""
    return bool(_SURROGATE.search(value))


def parse_id(value: object, what: str) -> int:
    """Ids are integers; anything else cannot name a record, so it is not found."""
    if isinstance(value, bool):
        raise not_found(what, value)
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not text.isascii() or not text.isdigit() or len(text) > 18:
            raise not_found(what, repr(str(value)[:40]))
        number = int(text)
    if number <= 0 or number >= 2**63:
        raise not_found(what, number)
    return number


def name(value: str, what: str = "name") -> str:
    """Names are data: kept exactly as given (quotes, SQL, markup, right-to-left text), but
    never blank, and never with characters that drive a terminal or reorder text."""
    if not value or not value.strip():
        raise invalid(f"{what} must not be empty")
    if len(value) > MAX_NAME:
        raise invalid(f"{what} is longer than {MAX_NAME} characters")
    if UNSAFE_CHARS.search(value):
        raise invalid(
            f"{what} must not contain control characters, line breaks or bidi controls",
            hint="type the text plainly; terminal escapes and direction overrides are refused",
        )
    if _SURROGATE.search(value):  # bytes that were not UTF-8 on the command line
        raise invalid(f"{what} must be UTF-8 text")
    return value


def optional_text(value: str | None, what: str) -> str | None:
    if value is None or value == "":
        return None
    return name(value, what)


def int_in_range(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise invalid(f"{what} must be a whole number")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not re.fullmatch(r"[+-]?[0-9]{1,30}", text):
            raise invalid(f"{what} must be a whole number, got {str(value)[:30]!r}")
        number = int(text)
    if not low <= number <= high:
        raise invalid(f"{what} must be between {low:,} and {high:,}, got {number:,}")
    return number


def email(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if _SURROGATE.search(value):  # bytes that were not UTF-8 on the command line
        raise invalid("email must be UTF-8 text")
    if len(value) > 254 or not _EMAIL.match(value) or UNSAFE_CHARS.search(value):
        raise invalid(f"invalid email {value[:60]!r}", hint="expected name@example.org")
    return value


def card_number(value: str | None) -> str:
    """12-19 digits passing Luhn; spaces and dashes between groups are allowed."""
    if value is None or value == "":
        raise invalid(f"{ref('pay')} card needs {ref('card')} NUMBER", field="card")
    digits = re.sub(r"[ -]", "", value)
    if not digits.isascii() or not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise invalid("card number must be 12 to 19 digits")
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    if total % 10:
        raise invalid("card number fails the Luhn check (mistyped?)")
    return digits


_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")


def timezone(value: str) -> str:
    """An IANA zone name ("Europe/Berlin"): refused unless the zone database knows it, so a
    typo never silently shows UTC times at the door. The shape check comes first: ZoneInfo
    reads files, and a name like "../../etc/passwd" must never reach it."""
    text = (value or "").strip()
    if not text or len(text) > 64 or not _ZONE_NAME.match(text):
        raise invalid(
            f"not a time zone name: {str(value)[:60]!r}",
            hint="use an IANA name such as Europe/Berlin, America/New_York or UTC",
        )
    from zoneinfo import available_timezones  # only setting an event's zone needs the list

    known = available_timezones()
    if text in known and text != "localtime":
        return text
    for name in known:  # "europe/berlin" or "utc": the name as the zone database spells it
        if name.casefold() == text.casefold() and name != "localtime":
            return name
    raise invalid(
        f"unknown time zone {text!r}",
        hint="use an IANA name such as Europe/Berlin, America/New_York or UTC",
    )
