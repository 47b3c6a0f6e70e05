-- Version 3: an event's own time zone (IANA name), for human output in local time.
ALTER TABLE events ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC'
    CHECK (length(timezone) BETWEEN 1 AND 64);
