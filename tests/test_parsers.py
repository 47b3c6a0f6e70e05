"""Money, time, ids and ticket codes: property tests for round trips and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tickethub_cli import clock, codes, money, validation
from tickethub_cli.errors import ErrorCode, TicketHubError

CURRENCIES = {"JPY": 0, "EUR": 2, "USD": 2, "BHD": 3, "KWD": 3}


def refused(fn, *args) -> TicketHubError:
    with pytest.raises(TicketHubError) as err:
        fn(*args)
    assert err.value.code == ErrorCode.INVALID_INPUT
    return err.value


@given(currency=st.sampled_from(sorted(CURRENCIES)), data=st.data())
def test_money_round_trip(currency, data):
    exp = CURRENCIES[currency]
    minor = data.draw(st.integers(0, money.MAX_MAJOR * 10**exp))
    text = money.format_amount(minor, currency)
    assert money.parse_amount(text, currency) == minor
    assert money.format_amount(money.parse_amount(text, currency), currency) == text


@given(whole=st.integers(0, 10**6), frac=st.text("0123456789", min_size=1, max_size=3))
def test_money_decimals_within_the_exponent(whole, frac):
    text = f"{whole}.{frac}"
    if len(frac) <= 2:
        assert money.parse_amount(text, "EUR") == whole * 100 + int(frac.ljust(2, "0"))
    else:
        refused(money.parse_amount, text, "EUR")
    refused(money.parse_amount, text, "JPY")
    assert money.parse_amount(text, "BHD") == whole * 1000 + int(frac.ljust(3, "0"))


@pytest.mark.parametrize(
    "text",
    [
        "-5",
        "+5",
        "1e3",
        "1E3",
        "NaN",
        "nan",
        "Infinity",
        "inf",
        "abc",
        "",
        " ",
        "1.",
        ".5",
        "1,5",
        "1.2.3",
        "0x10",
        "١٢",
        "10000000.01",
        "99999999999999999999",
        "5 EUR",
        "€5",
        "1_000",
        "1.234",
    ],
)
def test_money_refuses_malformed(text):
    refused(money.parse_amount, text, "EUR")


@given(st.text(max_size=40))
def test_money_never_accepts_anything_but_plain_decimals(text):
    try:
        minor = money.parse_amount(text, "EUR")
    except TicketHubError as err:
        assert err.code == ErrorCode.INVALID_INPUT
    else:
        stripped = text.strip()
        assert stripped.isascii() and stripped.replace(".", "", 1).isdigit()
        assert 0 <= minor <= money.MAX_MAJOR * 100


def test_currency_codes():
    assert money.parse_currency("eur") == "EUR"
    assert money.exponent("JPY") == 0 and money.exponent("BHD") == 3
    for bad in ("EURO", "XYZ", "", "E", "€"):
        refused(money.parse_currency, bad)


aware = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9998, 12, 30),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))]
    ),
)


@given(aware)
def test_time_round_trip_in_utc(dt):
    text = dt.isoformat()
    parsed = clock.parse(text)
    assert parsed == dt
    assert parsed.tzinfo == UTC
    shown = clock.fmt(parsed)
    assert shown.endswith("Z") and clock.parse(shown) == dt


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30)))
def test_time_without_offset_is_refused_with_a_hint(dt):
    err = refused(clock.parse, dt.isoformat())
    assert err.hint and "offset" in err.hint + err.message


@pytest.mark.parametrize(
    "text",
    [
        "tomorrow-ish",
        "2027-13-45T25:00:00",
        "2027-13-45T25:00:00Z",
        "2027-02-30T10:00:00Z",
        "2027-06-01T24:61:00+02:00",
        "",
        "now",
        "2027-06-01 20:00",
        "1717272000",
        "2027/06/01",
    ],
)
def test_time_refuses_garbage_and_impossible_dates(text):
    refused(clock.parse, text)


@given(st.text(max_size=50))
def test_time_parser_only_ever_refuses_cleanly(text):
    try:
        parsed = clock.parse(text)
    except TicketHubError as err:
        assert err.code == ErrorCode.INVALID_INPUT
    else:
        assert parsed.tzinfo == UTC


@given(st.integers(0, 4_000_000_000_000_000))
def test_fast_timestamp_text_matches_the_formatter(us):
    assert clock.text_of_us(us) == clock.fmt(clock.from_us(us))


@given(st.one_of(st.text(max_size=30), st.integers()))
def test_ids_are_positive_integers_or_not_found(value):
    try:
        ident = validation.parse_id(value, "thing")
    except TicketHubError as err:
        assert err.code == ErrorCode.NOT_FOUND
    else:
        assert 0 < ident < 2**63


@given(st.text("0123456789", min_size=12, max_size=19))
def test_luhn(number):
    digits = [int(c) for c in reversed(number)]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits))
    if total % 10 == 0:
        assert validation.card_number(number) == number
    else:
        refused(validation.card_number, number)


def test_generated_codes_are_well_formed_and_distinct():
    seen = {codes.generate() for _ in range(2000)}
    assert len(seen) == 2000
    for code in list(seen)[:200]:
        assert codes.is_well_formed(code)
        assert codes.canonical(codes.pretty(code).lower()) == code
        assert codes.canonical(" ".join(code)) == code


@given(st.data())
def test_codes_catch_every_substitution_and_neighbour_swap(data):
    body = data.draw(st.text(codes.ALPHABET, min_size=codes.LENGTH - 1, max_size=codes.LENGTH - 1))
    check = codes.check_char(body)
    assume(check is not None)
    code = body + check
    assert codes.is_well_formed(code)
    i = data.draw(st.integers(0, codes.LENGTH - 1))
    other = data.draw(st.sampled_from(codes.ALPHABET).filter(lambda c: c != code[i]))
    assert not codes.is_well_formed(code[:i] + other + code[i + 1 :])
    j = data.draw(st.integers(0, codes.LENGTH - 2))
    assume(code[j] != code[j + 1])
    assert not codes.is_well_formed(code[:j] + code[j + 1] + code[j] + code[j + 2 :])
