#!/usr/bin/env bash
# `make demo`: a real box-office session on a fresh database, every command shown as typed.
set -u
OUT="$(cd "$(dirname "$0")" && pwd)/out"
rm -rf "$OUT" && mkdir -p "$OUT"
export TICKETHUB_DB="$OUT/box.db"
export TICKETHUB_OPERATOR="demo-clerk"
export TICKETHUB_WEBHOOK_SECRET="whsec_demo"
export COLUMNS="${COLUMNS:-$(tput cols 2>/dev/null || echo 80)}"
OK_CARD=4242424242424242
DECLINED_CARD=4000000000000002

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
# run CMD…: show it, run it, show a non-zero exit code (the demo goes on either way)
run() {
  printf '\n\033[36m$'; printf ' %q' "$@"; printf '\033[0m\n'
  "$@"
  local code=$?
  [ "$code" -ne 0 ] && printf '\033[33m(exit %s)\033[0m\n' "$code"
  return 0
}
# jq-free field extraction from the last JSON object on stdin: field path like order.id
field() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().splitlines()[-1]);
for k in sys.argv[1].split("."): d=d[int(k)] if k.isdigit() else d[k]
print(d)' "$1"; }

bold "1. The organizer sets up an event"
run tickethub init
run tickethub event create --name "Jazz Night" --starts-at 2027-06-01T20:00:00+02:00 \
  --venue "Blue Hall" --currency EUR --timezone Europe/Berlin
run tickethub ticket-type add 1 --name Standing --price 25.00 --capacity 100 --max-per-order 6
run tickethub ticket-type add 1 --name "Front row" --price 60 --capacity 4
run tickethub ticket-type update 2 --capacity 6
bold "   The band is late: the event moves by an hour (times show in Berlin's time zone):"
run tickethub event update 1 --starts-at 2027-06-01T21:00:00+02:00
run tickethub event list
bold "   Bad input is refused with one clear line and an exit code:"
run tickethub ticket-type add 1 --name Balcony --price 1.234 --capacity 10
run tickethub event create --name Gig --starts-at 2027-06-01T20:00:00

bold "2. The box office sells"
run tickethub purchase --item 1:2 --email ann@example.org --name Ann --pay card \
  --card $OK_CARD --idempotency-key web-1001
bold "   A walk-in pays cash, no email needed (sell is an alias):"
run tickethub sell -i 2:1 --pay cash
bold "   A declined card: the order ends FAILED and the seats go back:"
run tickethub purchase -i 1:1 --email bob@example.org --pay card --card $DECLINED_CARD
bold "   The same request retried with the same key: the same order, never a second charge:"
run tickethub --json purchase --item 1:2 --email ann@example.org --name Ann --pay card \
  --card $OK_CARD --idempotency-key web-1001
bold "   ... and the same key for a different request is refused:"
run tickethub purchase --item 1:3 --email ann@example.org --pay card --card $OK_CARD \
  --idempotency-key web-1001

bold "3. A reservation paid by a signed provider callback"
ORDER=$(tickethub --json order create -i 1:2 --email cat@example.org | field order.id)
printf '{"id": "cb_1", "order_id": %s, "status": "succeeded", "amount_minor": 5000}' "$ORDER" \
  > "$OUT/callback.json"
SIG=$(python3 -c 'import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(),
open(sys.argv[2],"rb").read(), hashlib.sha256).hexdigest())' "$TICKETHUB_WEBHOOK_SECRET" \
  "$OUT/callback.json")
run tickethub payment callback --payload "$OUT/callback.json" --signature "$SIG"
bold "   A forged signature is refused (and recorded):"
run tickethub payment callback --payload "$OUT/callback.json" --signature deadbeef

bold "4. A cancellation with refund: tickets void, seats back on sale"
run tickethub --operator manager order cancel 1 --reason "customer cannot come"
run tickethub order list
bold "   The card terminal times out: outcome unknown, seats held, no second payment taken"
run tickethub purchase -i 1:2 --pay card --card 4000000000000119 -k desk-7
bold "   The cashier offers cash: the provider is asked first, the card had gone through"
UNKNOWN_ORDER=$(tickethub --json order list --status PENDING \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["orders"][0]["id"])')
run tickethub order pay "$UNKNOWN_ORDER" --pay cash
run tickethub order show "$UNKNOWN_ORDER"
bold "   The provider's own records (one charge, or a charge and its refund, per attempt):"
run tickethub payment ledger

bold "5. A batch from a script (CSV), re-run safely"
cat > "$OUT/sales.csv" <<CSV
idempotency_key,ticket_type_id,quantity,email,name,pay,card
batch-1,1,2,dan@example.org,Dan,card,$OK_CARD
batch-2,1,1,,,cash,
batch-3,1,two,,,cash,
CSV
run tickethub batch "$OUT/sales.csv"
run tickethub batch "$OUT/sales.csv"

bold "6. At the gate"
GOOD=$(tickethub --json order show 2 | field order.tickets.0.code)
BATCH_ORDER=$(tickethub --json order list --status PAID | field orders.0.id)
NEXT=$(tickethub --json order show "$BATCH_ORDER" | field order.tickets.0.code)
VOID=$(tickethub --json order show 1 | field order.tickets.0.code)
run tickethub event create --name "Other gig" --starts-at 2027-07-01T20:00:00+01:00 \
  --venue "Riverside" --timezone Europe/London
run tickethub ticket-type add 2 --name GA --price 10 --capacity 50
FOREIGN=$(tickethub --json sell -i 3:1 --pay cash | field order.tickets.0.code)
tickethub --json sell -i 3:2 --pay card --card $OK_CARD --name "Eve" >/dev/null
run tickethub ticket show "$GOOD"
bold "   One-shot scans (exit 0 admitted, 10-14 rejected):"
run tickethub validate "$GOOD" --event 1 --gate north
run tickethub validate "$GOOD" --event 1 --gate south
MISTYPED="$(printf '%s' "$NEXT" | cut -c1-4)-$(printf '%s' "$NEXT" | cut -c6-9 | tr 'A-Z0-9' 'B-ZA1-90')$(printf '%s' "$NEXT" | cut -c10-)"
run tickethub validate "$MISTYPED" --event 1
run tickethub validate "$FOREIGN" --event 1
run tickethub validate "$VOID" --event 1
bold "   The scanner loop (a barcode scanner types one code per line):"
printf '%s\n' "$NEXT" "$(printf '%s' "$NEXT" | tr 'A-Z' 'a-z' | tr -d -)" "not-a-ticket" \
  | (printf '\033[36m$ printf codes | tickethub gate --event 1 --gate east\033[0m\n';
     tickethub gate --event 1 --gate east)
bold "   A mistaken admission undone:"
run tickethub checkin undo "$GOOD" --event 1 --reason "scanned the wrong wristband"
run tickethub validate "$GOOD" --event 1 --gate north
bold "   Printable tickets: PDF at the desk, SVG or PNG for the web shop:"
run tickethub sell -i 1:2 --pay cash --name "Finn Example" --print-dir "$OUT/print" \
  --print-format pdf
run tickethub ticket export --order 2 --dir "$OUT/print" --format svg
run tickethub report --event 1

bold "7. The organizer calls an event off: every paid order refunded once, every ticket void"
run tickethub ticket-type update 3 --sales closed
bold "   First, who would get what back (nothing changes):"
run tickethub event cancel 2 --reason "storm warning" --dry-run
bold "   Then for real (a terminal asks first; --yes does not):"
run tickethub event cancel 2 --reason "storm warning" --yes
bold "   Run again (after a crash, say): nothing is refunded twice"
run tickethub event cancel 2 --reason "storm warning" --yes
bold "   Its tickets no longer get in:"
run tickethub validate "$FOREIGN" --event 2

bold "8. Health"
run tickethub reconcile
run tickethub doctor
run tickethub event show 1
bold "Where the files are"
printf '  database          %s\n' "$TICKETHUB_DB"
printf '  printed tickets   %s\n' "$OUT/print"
ls -l "$OUT/print" | sed 's/^/    /'
printf '  batch file        %s\n' "$OUT/sales.csv"
printf '  signed callback   %s\n' "$OUT/callback.json"
printf '  try it yourself:  export TICKETHUB_DB=%q; .venv/bin/tickethub event list\n' \
  "$TICKETHUB_DB"
