-- Version 4: what `tickethub serve` keeps. API tokens (only a hash of each secret), the
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
