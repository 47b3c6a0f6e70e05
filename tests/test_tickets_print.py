"""Printed tickets (issue 11): PNG, SVG and PDF files that say what the ticket is for.

Real processes write the files; the PDF's text is read back with pypdf (and pdftotext where
it is installed), the SVG is parsed as XML, the PNG's header is read.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from backends import BACKENDS, new_target  # the one test server (as conftest.py)

from tests.support import cli, dump, proc, raw_execute
from tickethub_cli import ticket_print

SVG = "{http://www.w3.org/2000/svg}"
HOLDER = "Zoë 東京 🎫 </text><script>alert(1)</script>"
EVENT = "Jazz Night & <b>Friends</b>"
VENUE = "Blue Hall, Oranienstraße 12"
LOCAL = "Tue 24 Nov 2026, 20:00 CET"  # 19:00 UTC in Europe/Berlin


def _set_timezone(db: str, event_id: int, zone: str) -> None:
    """Move the event to another zone with `event update`; a zone the zone database does
    not know (only a hand-edited database can hold one) is written directly."""
    done = proc(db, "event", "update", str(event_id), "--timezone", zone)
    if done.code == 0:
        return
    raw_execute(db, "UPDATE events SET timezone = ? WHERE id = ?", zone, event_id)


@pytest.fixture(scope="module", params=BACKENDS)
def shop(request, tmp_path_factory):
    """An event in Berlin with a VIP type at 45.00 EUR, sold once to a hostile name with a
    PDF printed at the sale (all real processes), on each backend."""
    root = tmp_path_factory.mktemp("print")
    db = new_target(request.param, str(root))
    assert proc(db, "init").code == 0
    event = proc(
        db, "event", "create", "--name", EVENT, "--starts-at", "2026-11-24T19:00:00Z",
        "--venue", VENUE, "--timezone", "Europe/Berlin",
    )  # fmt: skip
    assert event.code == 0, event.stderr
    event_id = event.json["event"]["id"]
    vip = proc(db, "ticket-type", "add", str(event_id), "--name", "VIP", "--price", "45",
               "--capacity", "10")  # fmt: skip
    assert vip.code == 0, vip.stderr
    type_id = vip.json["ticket_type"]["id"]
    sold = proc(
        db, "sell", "-i", f"{type_id}:2", "--pay", "cash", "--name", HOLDER,
        "--print-dir", str(root / "door"), "--print-format", "pdf",
    )  # fmt: skip
    assert sold.code == 0, sold.stderr
    return {"db": db, "root": root, "event": event_id, "type": type_id, "order": sold.json["order"]}


def _pdf_text(path: str) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def _expected(order: dict, ticket: dict) -> list[str]:
    return [
        LOCAL,
        "VIP · 45.00 EUR",
        f"Order {order['id']} · Ticket {ticket['id']}",
        ticket["code"],  # readable groups: K7QF-3M2A-…
    ]


def test_purchase_prints_pdf_tickets_that_say_what_they_are_for(shop):
    order = shop["order"]
    printed = order["printed"]
    assert [Path(p).name for p in printed] == [f"ticket-{t['id']}.pdf" for t in order["tickets"]]
    folder = shop["root"] / "door"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path, ticket in zip(printed, order["tickets"], strict=True):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert Path(path).read_bytes().startswith(b"%PDF-")
        text = _pdf_text(path)
        for expected in [*_expected(order, ticket), EVENT, VENUE]:
            assert expected in text, (expected, text)
        # the font has no CJK or emoji glyphs: those print as "?", the rest as typed
        assert "Holder: Zoë ?? ? </text><script>alert(1)</script>" in text
        other = next(t for t in order["tickets"] if t["id"] != ticket["id"])
        assert other["code"] not in text  # one ticket per file
        if shutil.which("pdftotext"):
            done = subprocess.run(
                ["pdftotext", "-enc", "UTF-8", path, "-"], capture_output=True, text=True
            )
            assert done.returncode == 0
            for expected in [*_expected(order, ticket), EVENT, VENUE]:
                assert expected in done.stdout


def test_ticket_export_pdf_and_the_time_in_another_zone(shop, tmp_path):
    """`ticket export --format pdf`; the local time follows the event's zone (summer time
    included), and an event with a zone nobody knows is printed in UTC, saying so."""
    db, order = shop["db"], shop["order"]
    _set_timezone(db, shop["event"], "America/New_York")
    try:
        out = proc(db, "ticket", "export", "--order", str(order["id"]), "--dir",
                   str(tmp_path / "ny"), "--format", "pdf")  # fmt: skip
        assert out.code == 0, out.stderr
        assert "Tue 24 Nov 2026, 14:00 EST" in _pdf_text(out.json["files"][0])
        _set_timezone(db, shop["event"], "Mars/Olympus_Mons")
        out = proc(db, "ticket", "export", "--order", str(order["id"]), "--dir",
                   str(tmp_path / "utc"), "--format", "pdf")  # fmt: skip
        assert "Tue 24 Nov 2026, 19:00 UTC" in _pdf_text(out.json["files"][0])
    finally:
        _set_timezone(db, shop["event"], "Europe/Berlin")


def test_ticket_export_svg_is_xml_with_every_text_escaped(shop, tmp_path):
    order = shop["order"]
    out = proc(shop["db"], "ticket", "export", "--order", str(order["id"]), "--dir",
               str(tmp_path), "--format", "svg")  # fmt: skip
    assert out.code == 0, out.stderr
    assert [Path(f).name for f in out.json["files"]] == [
        f"ticket-{t['id']}.svg" for t in order["tickets"]
    ]
    for path, ticket in zip(out.json["files"], order["tickets"], strict=True):
        raw = Path(path).read_bytes()
        root = ET.fromstring(raw)  # well-formed
        assert root.tag == f"{SVG}svg"
        assert [el.tag for el in root.iter() if el.tag not in {f"{SVG}{t}" for t in (
            "svg", "title", "rect", "path", "text")}] == []  # fmt: skip
        texts = [el.text or "" for el in root.iter(f"{SVG}text")]
        assert texts[0] == EVENT and texts[1] == VENUE
        # SVG keeps every character: the viewer's fonts draw them
        assert f"Holder: {HOLDER}" in texts
        for expected in _expected(order, ticket):
            assert expected in texts
        assert b"<script" not in raw and b"<b>" not in raw
        assert b"&lt;/text&gt;&lt;script&gt;" in raw and b"&amp; &lt;b&gt;" in raw


def test_ticket_export_png_is_a_card_larger_than_the_bare_qr(shop, tmp_path):
    order = shop["order"]
    out = proc(shop["db"], "ticket", "export", "--order", str(order["id"]), "--dir",
               str(tmp_path))  # fmt: skip
    # no --format: png stays the default
    assert out.code == 0, out.stderr
    for path in out.json["files"]:
        assert path.endswith(".png") and stat.S_IMODE(os.stat(path).st_mode) == 0o600
        data = Path(path).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert (width, height) == (2100, 990)  # 210×99 mm at 10 px/mm; the bare QR was 330²


def test_control_characters_in_stored_text_print_as_escapes(shop, tmp_path):
    """Text stored before the input rules (or written by another tool) with an ESC or a
    bidi override: printed as a visible escape in the PDF and SVG, never as itself."""
    db, order = shop["db"], shop["order"]
    evil = "VIP\x1b[31m\u202eevil"
    raw_execute(db, "UPDATE ticket_types SET name = ? WHERE id = ?", evil, shop["type"])
    try:
        for fmt in ("pdf", "svg"):
            out = proc(db, "ticket", "export", "--order", str(order["id"]), "--dir",
                       str(tmp_path / fmt), "--format", fmt)  # fmt: skip
            assert out.code == 0, out.stderr
            path = out.json["files"][0]
            if fmt == "pdf":
                text = _pdf_text(path)
            else:
                text = "\n".join(el.text or "" for el in ET.parse(path).iter(f"{SVG}text"))
            assert "VIP\\x1b[31m\\u202eevil · 45.00 EUR" in text
            assert "\x1b" not in text and "\u202e" not in text
    finally:
        raw_execute(db, "UPDATE ticket_types SET name = 'VIP' WHERE id = ?", shop["type"])


def test_bad_print_formats_are_refused_before_anything_is_written(shop, tmp_path):
    db = shop["db"]
    before = dump(db)
    bad = proc(db, "sell", "-i", f"{shop['type']}:1", "--pay", "cash",
               "--print-dir", str(tmp_path / "x"), "--print-format", "gif")  # fmt: skip
    assert bad.code == 2 and bad.error["code"] == "INVALID_INPUT"
    alone = proc(db, "sell", "-i", f"{shop['type']}:1", "--pay", "cash", "--print-format", "pdf")
    assert alone.code == 2 and "--print-dir" in alone.error["message"]
    export = proc(db, "ticket", "export", "--order", str(shop["order"]["id"]), "--dir",
                  str(tmp_path / "y"), "--format", "gif")  # fmt: skip
    assert export.code == 2 and "pdf" in export.error["message"]
    assert dump(db) == before and os.listdir(tmp_path) == []


def test_a_drawing_failure_after_the_sale_still_reports_the_sold_order(shop, tmp_path, monkeypatch):
    def broken(*_args, **_kw):
        raise RuntimeError("the PDF library fell over")

    monkeypatch.setattr(ticket_print, "draw", broken)
    out = cli(shop["db"], "sell", "-i", f"{shop['type']}:1", "--pay", "cash",
              "--print-dir", str(tmp_path), "--print-format", "pdf")  # fmt: skip
    assert out.code == 0 and out.json["order"]["status"] == "PAID"
    assert out.json["order"]["printed"] == []
    error = out.json["order"]["print_error"]
    assert "the PDF library fell over" in error and "--format pdf" in error
    assert f"ticket export --order {out.json['order']['id']}" in error


def test_start_up_of_other_commands_loads_no_printing_library(shop):
    """`--json event list` must not pay for fpdf2, Pillow or fontTools."""
    script = (
        "import atexit, sys\n"
        "def report():\n"
        "    heavy = sorted(m for m in ('fpdf', 'PIL', 'fontTools', 'segno') if m in sys.modules)\n"
        "    sys.stderr.write('LOADED:' + ','.join(heavy) + '\\n')\n"
        "atexit.register(report)\n"
        "from tickethub_cli.cli import main\n"
        f"sys.argv = ['tickethub', '--db', {shop['db']!r}, '--json', 'event', 'list']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert '"name"' in done.stdout
    assert "LOADED:\n" in done.stderr, done.stderr


def test_local_time_and_the_card_text():
    assert ticket_print.local_time("2026-11-24T19:00:00.123456Z", "Europe/Berlin") == LOCAL
    assert ticket_print.local_time("2027-06-01T18:00:00Z", "Europe/Berlin") == (
        "Tue 1 Jun 2027, 20:00 CEST"
    )
    assert ticket_print.local_time("2027-06-01T18:00:00Z", None).endswith("18:00 UTC")
    assert ticket_print.local_time("2027-06-01T18:00:00Z", "Not/AZone").endswith("18:00 UTC")
    row = {
        "id": 7, "order_id": 3, "code": "K7QF3M2A98XCTP4DZN6WR2BE", "type_name": "Seat",
        "price_minor": 4500, "currency": "JPY", "buyer": None, "email": None,
        "event": {"name": "Gig", "venue": None, "starts_at": "2027-06-01T18:00:00Z"},
    }  # fmt: skip
    card = ticket_print.card(row)
    assert (card.price, card.holder, card.venue) == ("4500 JPY", "—", "")
    assert card.readable_code == "K7QF-3M2A-98XC-TP4D-ZN6W-R2BE"
    assert ticket_print.drawable("Zoë ǅ 東京 🎫", "regular") == "Zoë ǅ ?? ?"


def _svg_texts(path: str) -> list[str]:
    return [el.text or "" for el in ET.parse(path).iter(f"{SVG}text")]


def _new_shop(db: str, *, starts_at: str, zone: str, type_name: str) -> tuple[str, int]:
    """A fresh database with one event and one type at 45.00 EUR (real processes)."""
    assert proc(db, "init").code == 0
    event = proc(db, "event", "create", "--name", "Gig", "--starts-at", starts_at,
                 "--timezone", zone)  # fmt: skip
    assert event.code == 0, event.stderr
    kind = proc(db, "ticket-type", "add", str(event.json["event"]["id"]), "--name", type_name,
                "--price", "45", "--capacity", "10")  # fmt: skip
    assert kind.code == 0, kind.stderr
    return db, kind.json["ticket_type"]["id"]


def test_a_long_holder_or_type_name_never_loses_the_holder_or_the_price(make_db, tmp_path):
    """A holder written as one long word (an email address, the holder when no name is
    given) is printed as far as it fits, not cut down to "Holder:…"; a type name too long
    for its two lines is cut, never the price after it."""
    email = "maximilian.mustermann-schmidt@example-university.edu"
    long_type = " ".join(["Weekend pass with camping, parking and the after-show party"] * 3)
    db, type_id = _new_shop(make_db(), starts_at="2027-06-01T18:00:00Z", zone="Europe/Berlin",
                            type_name=long_type)  # fmt: skip
    sold = proc(db, "sell", "-i", f"{type_id}:1", "--pay", "cash", "--email", email,
                "--print-dir", str(tmp_path / "out"), "--print-format", "svg")  # fmt: skip
    assert sold.code == 0, sold.stderr
    texts = _svg_texts(sold.json["order"]["printed"][0])
    holder = next(t for t in texts if t.startswith("Holder:"))
    assert holder.startswith("Holder: maximilian.mustermann"), texts
    assert any(t.endswith("· 45.00 EUR") for t in texts), texts
    assert any(t.startswith("Weekend pass with camping") for t in texts), texts


def test_an_event_at_the_edge_of_the_calendar_still_prints(make_db, tmp_path):
    """An event whose local time falls outside the calendar (year 9999 at UTC+14) is
    printed in UTC, saying so: the sale prints and `ticket export` does not fail with an
    internal error."""
    db, type_id = _new_shop(make_db(), starts_at="9999-12-31T23:00:00Z",
                            zone="Pacific/Kiritimati", type_name="GA")  # fmt: skip
    sold = proc(db, "sell", "-i", f"{type_id}:1", "--pay", "cash",
                "--print-dir", str(tmp_path / "sold"), "--print-format", "svg")  # fmt: skip
    assert sold.code == 0, sold.stderr
    assert "print_error" not in sold.json["order"], sold.json["order"].get("print_error")
    assert "Fri 31 Dec 9999, 23:00 UTC" in _svg_texts(sold.json["order"]["printed"][0])
    out = proc(db, "ticket", "export", "--order", str(sold.json["order"]["id"]), "--dir",
               str(tmp_path / "again"), "--format", "pdf")  # fmt: skip
    assert out.code == 0, out.stderr
    assert "Fri 31 Dec 9999, 23:00 UTC" in _pdf_text(out.json["files"][0])
