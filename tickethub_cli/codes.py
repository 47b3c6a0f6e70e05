"""Ticket codes: unguessable, typo-proof, easy to read aloud.

24 characters of 0-9A-Z (23 random, about 119 bits from `secrets`, plus one check character),
printed as six groups of four joined by "-". The check is a weighted sum modulo the prime 37
with weights 1..24: every single substitution and every swap of two different neighbours
changes the sum, so it is caught. Codes whose check would be 36 (no character) are redrawn.
"""

from __future__ import annotations

from operator import mul

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
LENGTH = 24
GROUP = 4
_IGNORED = str.maketrans("", "", " -\t")


_WEIGHTS = range(1, LENGTH + 1)


def _weighted(body: str) -> int:
    # map() rather than a generator: every scan checks a code (C loops, no Python frames)
    return sum(map(mul, _WEIGHTS, map(_VALUE.__getitem__, body))) % 37


def check_char(body: str) -> str | None:
    """The character that makes the weighted sum 0 mod 37, or None if it would be 36."""
    n = len(body) + 1
    value = (-_weighted(body) * pow(n, -1, 37)) % 37
    return ALPHABET[value] if value < 36 else None


_BODY_SPACE = 36 ** (LENGTH - 1)


def _base36(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rem = divmod(number, 36)
        digits.append(ALPHABET[rem])
    return "".join(digits)


def generate() -> str:
    import secrets  # only sellers need it; a gate process starts faster without

    while True:  # one unbiased draw from `secrets` per code, not one syscall per character
        body = _base36(secrets.randbelow(_BODY_SPACE), LENGTH - 1)
        check = check_char(body)
        if check is not None:
            return body + check


def canonical(text: str) -> str:
    """Upper case, separators (spaces, dashes) removed; does not judge validity."""
    return text.translate(_IGNORED).upper()


def is_well_formed(code: str) -> bool:
    """True for a canonical code of the right length, alphabet and check character."""
    # strip() leaves nothing exactly when every character is of the alphabet
    return len(code) == LENGTH and not code.strip(ALPHABET) and _weighted(code) == 0


def pretty(code: str) -> str:
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))
