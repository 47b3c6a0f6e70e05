-- TicketHub schema, version 4 (a new database gets this; migrations/ bring older ones here). The single source of the schema: shipped inside the package.
-- Invariants live here as well as in code, so a bug in code cannot oversell.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL CHECK (length(trim(name)) > 0),
    venue      TEXT,
    starts_at  TEXT NOT NULL,
    currency   TEXT NOT NULL CHECK (length(currency) = 3),
    created_at TEXT NOT NULL,
    -- cancelling: being called off (orders refunded one by one; a re-run goes on)
    status     TEXT NOT NULL DEFAULT 'on_sale'
               CHECK (status IN ('on_sale', 'cancelling', 'cancelled')),
    cancel_reason TEXT,
    -- the IANA zone people at the event live in: human output shows its local times
    timezone   TEXT NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64)
) STRICT;

CREATE TABLE ticket_types (
    id            INTEGER PRIMARY KEY,
    event_id      INTEGER NOT NULL REFERENCES events (id),
    name          TEXT NOT NULL CHECK (length(trim(name)) > 0),
    price_minor   INTEGER NOT NULL CHECK (price_minor >= 0),
    capacity      INTEGER NOT NULL CHECK (capacity >= 0 AND capacity <= 10000000),
    sold          INTEGER NOT NULL DEFAULT 0 CHECK (sold >= 0),
    held          INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    max_per_order INTEGER NOT NULL CHECK (max_per_order BETWEEN 1 AND 1000),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    sales         TEXT NOT NULL DEFAULT 'open' CHECK (sales IN ('open', 'closed')),
    CHECK (sold + held <= capacity)
) STRICT;
CREATE INDEX ticket_types_event ON ticket_types (event_id);

CREATE TABLE orders (
    id              INTEGER PRIMARY KEY,
    event_id        INTEGER NOT NULL REFERENCES events (id),
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'PAID', 'FAILED', 'CANCELLED')),
    email           TEXT,
    name            TEXT,
    currency        TEXT NOT NULL,
    total_minor     INTEGER NOT NULL CHECK (total_minor >= 0),
    idempotency_key TEXT NOT NULL UNIQUE,
    pay_method      TEXT CHECK (pay_method IN ('card', 'cash')),
    -- only in databases from version 1: a PAID order whose cancellation a crash interrupted
    -- (reconcile finishes it); version 2 cancels in one transaction and owes the refunds
    cancel_requested_reason TEXT,
    hold_expires_us INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
) STRICT;
CREATE INDEX orders_event ON orders (event_id);
CREATE INDEX orders_pending ON orders (status, hold_expires_us) WHERE status = 'PENDING';

CREATE TABLE order_lines (
    order_id         INTEGER NOT NULL REFERENCES orders (id),
    ticket_type_id   INTEGER NOT NULL REFERENCES ticket_types (id),
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, ticket_type_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX order_lines_type ON order_lines (ticket_type_id);

-- Stripe-style idempotency keys with brandur's recovery points and a worker lease.
CREATE TABLE idempotency_keys (
    key            TEXT PRIMARY KEY,
    fingerprint    TEXT NOT NULL,
    order_id       INTEGER REFERENCES orders (id),
    recovery_point TEXT NOT NULL CHECK (recovery_point IN ('reserved', 'charged', 'finished')),
    locked_by      TEXT,                -- "host:pid" of the worker holding the lease
    locked_until_us INTEGER,            -- lease end, epoch microseconds
    last_seen_us   INTEGER NOT NULL,    -- last sign of life of the worker (reconcile's clock)
    result_code    TEXT,                -- final error code, NULL when the request succeeded
    result_message TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY,
    order_id        INTEGER NOT NULL REFERENCES orders (id),
    ticket_type_id  INTEGER NOT NULL REFERENCES ticket_types (id),
    event_id        INTEGER NOT NULL REFERENCES events (id),
    code            TEXT NOT NULL UNIQUE,   -- canonical: upper case, no separators
    status          TEXT NOT NULL CHECK (status IN ('valid', 'void')),
    checked_in_at   TEXT,
    checked_in_gate TEXT,
    created_at      TEXT NOT NULL
) STRICT;
CREATE INDEX tickets_order ON tickets (order_id);
-- check-ins per event and type, without reading a million tickets for the report
CREATE INDEX tickets_checked_in ON tickets (event_id, ticket_type_id) WHERE checked_in_at IS NOT NULL;

-- Every payment attempt, card or cash: its own state, amount and provider reference. An order
-- is PAID when a captured payment covers it; any other capture is refunded, once.
CREATE TABLE payments (
    id             INTEGER PRIMARY KEY,
    order_id       INTEGER NOT NULL REFERENCES orders (id),
    method         TEXT NOT NULL CHECK (method IN ('card', 'cash')),
    amount_minor   INTEGER NOT NULL CHECK (amount_minor >= 0),
    -- pending: being taken; unknown: the provider did not say; the rest are final
    status         TEXT NOT NULL
                   CHECK (status IN ('pending', 'unknown', 'captured', 'declined', 'voided',
                                     'refunded')),
    refunded_minor INTEGER NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    -- a refund is asked for at most once per payment (this column), then done
    refund_state   TEXT CHECK (refund_state IN ('requested', 'done')),
    refund_reason  TEXT,
    provider_ref   TEXT,             -- the charge's key at the provider ("pay_<id>")
    card_last4     TEXT CHECK (card_last4 IS NULL OR length(card_last4) = 4),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CHECK (refund_state IS NULL OR status IN ('captured', 'refunded')),
    CHECK ((status = 'refunded') = (refund_state IS 'done'))
) STRICT;
CREATE INDEX payments_order ON payments (order_id);
CREATE INDEX payments_refund ON payments (refund_state) WHERE refund_state = 'requested';
-- at most one payment of an order is still open (being taken, or its outcome unknown)
CREATE UNIQUE INDEX payments_one_open ON payments (order_id)
    WHERE status IN ('pending', 'unknown');

-- The mock payment provider's own durable ledger (what its dashboard would show), keyed by
-- the charge's idempotency key. Written only outside our transactions, so our rollback never
-- undoes a charge; a second charge or refund with the same key returns the first.
CREATE TABLE mockpay_charges (
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

-- Every provider callback we accepted (by id, so a repeat is a no-op) or refused.
CREATE TABLE callbacks (
    id           INTEGER PRIMARY KEY,
    callback_id  TEXT,
    order_id     INTEGER,
    status       TEXT,
    amount_minor INTEGER,
    outcome      TEXT NOT NULL,   -- applied | known | ignored | refund | signature_invalid
    payload_sha256 TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    operator     TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX callbacks_id ON callbacks (callback_id) WHERE outcome <> 'signature_invalid';

-- Every scan, good or bad. Unknown input is stored truncated, never unbounded.
CREATE TABLE scans (
    id        INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    at_us     INTEGER NOT NULL,
    event_id  INTEGER,
    gate      TEXT,
    operator  TEXT NOT NULL,
    input     TEXT NOT NULL,
    input_sha256 TEXT,              -- set when `input` is not the whole input (too long, unprintable)
    ticket_id INTEGER,
    result    TEXT NOT NULL,
    dry_run   INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX scans_event ON scans (event_id, result, at_us);

-- Append-only audit trail of every state change.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    operator    TEXT NOT NULL,
    entity      TEXT NOT NULL,
    entity_id   INTEGER,
    action      TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT,
    reason      TEXT,
    data        TEXT
) STRICT;
CREATE INDEX audit_entity ON audit_log (entity, entity_id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- Scans are evidence: append-only, like the audit log.
CREATE TRIGGER scans_no_update BEFORE UPDATE ON scans
BEGIN SELECT RAISE(ABORT, 'scans is append-only'); END;
CREATE TRIGGER scans_no_delete BEFORE DELETE ON scans
BEGIN SELECT RAISE(ABORT, 'scans is append-only'); END;

-- What `tickethub serve` keeps. API tokens (only a hash of each secret), the
-- responses given to Idempotency-Key requests (replayed byte for byte), and per-token
-- counts of unknown or malformed scans and of the refusals they earned (anti-enumeration,
-- counted here so every worker process agrees).
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'box-office', 'gate', 'viewer')),
    event_id      INTEGER REFERENCES events (id),
    name          TEXT,
    secret_sha256 TEXT NOT NULL UNIQUE CHECK (length(secret_sha256) = 64),
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
) STRICT;

CREATE TABLE http_responses (
    key            TEXT PRIMARY KEY,     -- the same key space as idempotency_keys.key
    request_sha256 TEXT NOT NULL,        -- method, path and canonical body (card masked)
    status         INTEGER NOT NULL,
    body           TEXT NOT NULL,        -- exactly as sent, ending in ,"replayed":false}
    created_at     TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE token_misses (
    id       INTEGER PRIMARY KEY,
    token_id INTEGER NOT NULL,
    at_us    INTEGER NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('UNKNOWN', 'MALFORMED', 'REFUSED'))
) STRICT;
-- only the misses that count: a token refused 100,000 times must not make each later check
-- walk its refusals (the check runs in the one writer, inside BEGIN IMMEDIATE)
CREATE INDEX token_misses_window ON token_misses (token_id, at_us) WHERE kind <> 'REFUSED';
