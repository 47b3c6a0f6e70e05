"""The two schemas describe one box office: schema.sql (SQLite) and schema.postgresql.sql
have the same tables, columns (name, type, nullability, default), keys, foreign keys,
CHECK constraints, indexes and append-only tables. Each side is read from a real database
made by `init`, except the CHECKs and the indexes' definitions, which are compared as
normalised text of the two files (SQLite keeps no parsed form of them)."""

from __future__ import annotations

import re
import sqlite3

import pytest
from support import raw_query

from tickethub_cli import db

TYPES = {"INTEGER": "bigint", "TEXT": "text"}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, pg_server) -> tuple[str, str]:
    lite = str(tmp_path_factory.mktemp("schema") / "s.db")
    pg = pg_server.new_database()
    for target in (lite, pg):
        conn, _, _ = db.init(target)
        conn.close()
    return lite, pg


def sqlite_tables(path: str) -> dict[str, dict]:
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        out: dict[str, dict] = {}
        for t in names:
            cols = {}
            for _, name, type_, notnull, default, pk in conn.execute(f"PRAGMA table_info({t})"):
                cols[name] = (TYPES[type_], bool(notnull or pk), _default(default))
            keys = {
                "pk": tuple(
                    r[1]
                    for r in sorted(conn.execute(f"PRAGMA table_info({t})"), key=lambda r: r[5])
                    if r[5]
                ),
                "unique": sorted(
                    tuple(c[2] for c in conn.execute(f"PRAGMA index_info({ix[1]})"))
                    for ix in conn.execute(f"PRAGMA index_list({t})")
                    if ix[3] == "u"
                ),
                "fk": sorted(
                    (r[3], r[2], r[4]) for r in conn.execute(f"PRAGMA foreign_key_list({t})")
                ),
            }
            out[t] = {"columns": cols, **keys}
        return out
    finally:
        conn.close()


def pg_tables(url: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for table, name, type_, nullable, default in raw_query(
        url,
        "SELECT table_name, column_name, data_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = current_schema()",
    ):
        out.setdefault(table, {"columns": {}, "unique": [], "fk": [], "pk": ()})
        out[table]["columns"][name] = (type_, nullable == "NO", _default(default))
    for table, kind, cols, ref_table, ref_cols in raw_query(
        url,
        "SELECT c.conrelid::regclass::text, c.contype,"
        " array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)"
        "  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),"
        " c.confrelid::regclass::text,"
        " array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)"
        "  JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)"
        " FROM pg_constraint c JOIN pg_namespace s ON s.oid = c.connamespace"
        " WHERE s.nspname = current_schema() AND c.contype IN ('p', 'u', 'f')",
    ):
        entry = out[table]
        if kind == "p":
            entry["pk"] = tuple(cols)
        elif kind == "u":
            entry["unique"].append(tuple(cols))
        else:
            entry["fk"].extend((c, ref_table, r) for c, r in zip(cols, ref_cols, strict=True))
    for entry in out.values():
        entry["unique"].sort()
        entry["fk"].sort()
    return out


def _default(value: str | None) -> str | None:
    if value is None:
        return None
    return re.sub(r"::\w+( \w+)*$", "", str(value))  # PostgreSQL's 'open'::text is 'open'


def test_same_tables_columns_keys_and_foreign_keys(both):
    lite, pg = both
    assert pg_tables(pg) == sqlite_tables(lite)


def test_same_indexes(both):
    lite, pg = both
    sqlite_ix = {
        r[0]: r[1]
        for r in raw_query(
            lite,
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"
            " AND name NOT LIKE 'sqlite_autoindex%'",
        )
    }
    pg_ix = {
        r[0]: r[1]
        for r in raw_query(
            pg,
            "SELECT i.indexname, i.tablename FROM pg_indexes i WHERE i.schemaname ="
            " current_schema() AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
            " WHERE c.conname = i.indexname)",
        )
    }
    assert pg_ix == sqlite_ix
    assert statements("sqlite", "INDEX") == statements("postgresql", "INDEX")


def test_same_checks():
    lite, pg = checks("sqlite"), checks("postgresql")
    assert lite.keys() == pg.keys()
    for table in lite:
        assert pg[table] == lite[table], table
    assert sum(len(c) for c in lite.values()) >= 25  # the parser found them all


def test_same_append_only_tables(both):
    lite, pg = both
    on_sqlite = raw_query(
        lite, "SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger' ORDER BY 1"
    )
    on_pg = raw_query(
        pg,
        "SELECT event_object_table FROM information_schema.triggers"
        " WHERE event_object_schema = current_schema()"
        " GROUP BY 1 HAVING string_agg(DISTINCT event_manipulation::text, ','"
        " ORDER BY event_manipulation::text) = 'DELETE,UPDATE' ORDER BY 1",
    )
    assert on_pg == on_sqlite == [("audit_log",), ("scans",)]


# ------------------------------------------------------------------ the files' own text


def _text(dialect: str) -> str:
    text = db.schema_sql(dialect)
    text = re.sub(r"--[^\n]*", "", text)  # comments
    return " ".join(text.split())


def _normal(sql: str) -> str:
    sql = " ".join(sql.lower().split())
    sql = sql.replace("is not distinct from", "is")  # SQLite's null-safe `IS`
    return sql.replace("( ", "(").replace(" )", ")")


def statements(dialect: str, kind: str) -> list[str]:
    found = re.findall(rf"CREATE (?:UNIQUE )?{kind} [^;]+;", _text(dialect))
    return sorted(_normal(s) for s in found)


def checks(dialect: str) -> dict[str, list[str]]:
    """Every CHECK (…) of every CREATE TABLE, normalised, per table."""
    out: dict[str, list[str]] = {}
    for name, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\)[^()]*?;", _text(dialect)):
        found = []
        for match in re.finditer(r"CHECK \(", body):
            depth, i = 1, match.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(body[i], 0)
                i += 1
            found.append(_normal(body[match.end() : i - 1]))
        out[name] = sorted(found)
    return out
