"""Bounded, typed parsing of JSON that arrives from files, pipes and providers.

`json.loads` has three ways to fail besides a syntax error, and each used to end in exit 1:
an integer longer than Python's 4,300-digit conversion limit (ValueError), nesting deeper
than the recursion limit (RecursionError), and a "\\ud800" escape that yields a lone
surrogate (parsed fine, then refused by SQLite and stdout much later). Here all of them are
one INVALID_INPUT, raised before the value is used.
"""

from __future__ import annotations

import json
from typing import Any

from . import validation as v
from .errors import invalid


def load_json(text: str | bytes, what: str) -> Any:
    """Parse one JSON document; INVALID_INPUT (naming `what`) for anything unusable."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise invalid(f"{what} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except UnicodeDecodeError:
        raise invalid(f"{what} is not UTF-8 text") from None
    except RecursionError:
        raise invalid(f"{what} is nested too deeply") from None
    except ValueError:  # an integer beyond the int-from-text digit limit
        raise invalid(f"{what} holds a number too long to be real") from None
    if _escapes(text) and _has_lone_surrogate(value):
        raise invalid(f"{what} holds a \\u escape of a lone surrogate (not a character)")
    return value


def _escapes(text: str | bytes) -> bool:
    """Only a \\u escape can produce a surrogate from decoded text: skip the walk otherwise."""
    return ("\\u" if isinstance(text, str) else b"\\u") in text


def _has_lone_surrogate(value: Any) -> bool:
    """Walk keys and strings without recursion (the value may be as deep as json allows)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if v.has_surrogate(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
