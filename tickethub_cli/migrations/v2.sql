-- Version 1 → 2: payments become first-class attempts, the provider's ledger is keyed by
-- charge, card fingerprints lose their digits, scans become append-only; events can be
-- called off and a ticket type's sales closed.
-- Old evidence is kept as it was, so `doctor` shows what the old build got wrong
-- (a second capture, a second refund, a resold admitted seat).

CREATE TABLE payments_v2 (
    id             INTEGER PRIMARY KEY,
    order_id       INTEGER NOT NULL REFERENCES orders (id),
    method         TEXT NOT NULL CHECK (method IN ('card', 'cash')),
    amount_minor   INTEGER NOT NULL CHECK (amount_minor >= 0),
    status         TEXT NOT NULL
                   CHECK (status IN ('pending', 'unknown', 'captured', 'declined', 'voided',
                                     'refunded')),
    refunded_minor INTEGER NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    refund_state   TEXT CHECK (refund_state IN ('requested', 'done')),
    refund_reason  TEXT,
    provider_ref   TEXT,
    card_last4     TEXT CHECK (card_last4 IS NULL OR length(card_last4) = 4),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CHECK (refund_state IS NULL OR status IN ('captured', 'refunded')),
    CHECK ((status = 'refunded') = (refund_state IS 'done'))
) STRICT;

-- every old charge row is one attempt ('callback' rows were card charges we heard of)
INSERT INTO payments_v2 (id, order_id, method, amount_minor, status, provider_ref,
                         created_at, updated_at)
SELECT p.id, p.order_id, CASE p.method WHEN 'cash' THEN 'cash' ELSE 'card' END, p.amount_minor,
       CASE WHEN p.status IN ('captured', 'declined', 'voided') THEN p.status
            WHEN p.status = 'refunded' THEN 'captured' ELSE 'declined' END,
       CASE WHEN p.method = 'card' THEN p.provider_ref END, p.at, p.at
FROM payments p WHERE p.kind = 'charge';

-- old refunds land on the order's first captured charge, all of them (two refunds stay two)
UPDATE payments_v2 SET
    refunded_minor = (SELECT sum(r.amount_minor) FROM payments r
                      WHERE r.kind = 'refund' AND r.order_id = payments_v2.order_id),
    status = 'refunded', refund_state = 'done'
WHERE id IN (SELECT min(id) FROM payments_v2 WHERE status = 'captured' GROUP BY order_id)
  AND EXISTS (SELECT 1 FROM payments r WHERE r.kind = 'refund'
              AND r.order_id = payments_v2.order_id);

-- refunds with no charge on record (the old late-success path): the capture they undid
INSERT INTO payments_v2 (order_id, method, amount_minor, status, refunded_minor, refund_state,
                         provider_ref, created_at, updated_at)
SELECT r.order_id, CASE min(r.method) WHEN 'cash' THEN 'cash' ELSE 'card' END,
       min(r.amount_minor), 'refunded', sum(r.amount_minor), 'done',
       CASE WHEN min(r.method) <> 'cash' THEN 'mock_' || r.order_id END, min(r.at), max(r.at)
FROM payments r
WHERE r.kind = 'refund'
  AND NOT EXISTS (SELECT 1 FROM payments_v2 n WHERE n.order_id = r.order_id
                  AND n.status = 'refunded')
GROUP BY r.order_id;

-- late successes whose refund the old build had not finished: owed now
INSERT INTO payments_v2 (order_id, method, amount_minor, status, refund_state, refund_reason,
                         provider_ref, created_at, updated_at)
SELECT c.order_id, 'card', c.amount_minor, 'captured', 'requested',
       'late provider success (from version 1)', 'mock_' || c.order_id, c.received_at,
       c.received_at
FROM callbacks c WHERE c.refund_pending = 1;

-- payments in flight become open attempts under the old provider key
INSERT INTO payments_v2 (order_id, method, amount_minor, status, provider_ref, created_at,
                         updated_at)
SELECT o.id, coalesce(o.pay_method, 'card'), o.total_minor,
       CASE o.payment_state WHEN 'unknown' THEN 'unknown' ELSE 'pending' END,
       CASE WHEN coalesce(o.pay_method, 'card') = 'card' THEN 'mock_' || o.id END,
       o.updated_at, o.updated_at
FROM orders o WHERE o.status = 'PENDING' AND o.payment_state IS NOT NULL;

DROP TABLE payments;
ALTER TABLE payments_v2 RENAME TO payments;
CREATE INDEX payments_order ON payments (order_id);
CREATE INDEX payments_refund ON payments (refund_state) WHERE refund_state = 'requested';
CREATE UNIQUE INDEX payments_one_open ON payments (order_id)
    WHERE status IN ('pending', 'unknown');

-- the old provider keyed its charges by order: that becomes the charge key "mock_<order>"
CREATE TABLE mockpay_v2 (
    ref            TEXT PRIMARY KEY,
    order_id       INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('captured', 'declined', 'voided', 'refunded')),
    amount_minor   INTEGER NOT NULL,
    refunded_minor INTEGER NOT NULL DEFAULT 0,
    currency       TEXT,
    card_last4     TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO mockpay_v2 (ref, order_id, status, amount_minor, refunded_minor, currency,
                        card_last4, created_at, updated_at)
SELECT 'mock_' || m.order_id, m.order_id, m.status, m.amount_minor,
       CASE WHEN m.status = 'refunded' THEN m.amount_minor ELSE 0 END,
       (SELECT o.currency FROM orders o WHERE o.id = m.order_id), m.card_last4, m.created_at,
       m.updated_at
FROM mockpay_charges m;
DROP TABLE mockpay_charges;
ALTER TABLE mockpay_v2 RENAME TO mockpay_charges;

ALTER TABLE orders DROP COLUMN payment_state;
ALTER TABLE events ADD COLUMN status TEXT NOT NULL DEFAULT 'on_sale'
    CHECK (status IN ('on_sale', 'cancelling', 'cancelled'));
ALTER TABLE events ADD COLUMN cancel_reason TEXT;
ALTER TABLE ticket_types ADD COLUMN sales TEXT NOT NULL DEFAULT 'open'
    CHECK (sales IN ('open', 'closed'));
ALTER TABLE callbacks DROP COLUMN refund_pending;

-- fingerprints held whole card numbers: redacted ("legacy" keys still replay, never charge)
UPDATE idempotency_keys SET fingerprint = 'legacy';

CREATE TRIGGER scans_no_update BEFORE UPDATE ON scans
BEGIN SELECT RAISE(ABORT, 'scans is append-only'); END;
CREATE TRIGGER scans_no_delete BEFORE DELETE ON scans
BEGIN SELECT RAISE(ABORT, 'scans is append-only'); END;
