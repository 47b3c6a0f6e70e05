"""The one money type: decimal strings in, integer minor units stored, never floats."""

from __future__ import annotations

import re

from .errors import invalid

# ISO 4217 active codes and their minor-unit exponents. Codes not listed have exponent 2.
_EXP0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXP3 = "BHD IQD JOD KWD LYD OMR TND"
_EXP4 = "CLF UYW"
_EXP2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR "
    "FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW "
    "KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN "
    "NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD "
    "SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU "
    "UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL"
)
CURRENCY_EXPONENTS: dict[str, int] = {
    **{c: 2 for c in _EXP2.split()},
    **{c: 0 for c in _EXP0.split()},
    **{c: 3 for c in _EXP3.split()},
    **{c: 4 for c in _EXP4.split()},
}
MAX_MAJOR = 10_000_000
_AMOUNT = re.compile(r"^([0-9]+)(?:\.([0-9]+))?$")


def parse_currency(code: str) -> str:
    value = code.strip().upper()
    if value not in CURRENCY_EXPONENTS:
        raise invalid(
            f"unknown currency {code[:20]!r}", hint="use an ISO 4217 code such as EUR, USD, JPY"
        )
    return value


def exponent(currency: str) -> int:
    return CURRENCY_EXPONENTS[currency]


def parse_amount(text: str, currency: str) -> int:
    """Parse "25" or "25.50" into minor units of `currency`, refusing anything ambiguous."""
    value = text
    match = _AMOUNT.fullmatch(value) if len(value) <= 32 else None
    if not match:
        raise invalid(
            f"invalid amount {text[:40]!r}",
            hint="write a plain decimal such as 25 or 25.50 (no sign, exponent or symbol)",
        )
    whole, frac = match.group(1), match.group(2) or ""
    exp = exponent(currency)
    if len(frac) > exp:
        raise invalid(f"amount {value} has more than {exp} decimals, which {currency} allows")
    minor = int(whole) * 10**exp + int(frac.ljust(exp, "0") or "0")
    if minor > MAX_MAJOR * 10**exp:
        raise invalid(f"amount {value} is above the limit of {MAX_MAJOR:,} {currency}")
    return minor


def format_amount(minor: int, currency: str) -> str:
    exp = exponent(currency)
    if exp == 0:
        return str(minor)
    whole, frac = divmod(minor, 10**exp)
    return f"{whole}.{frac:0{exp}d}"
