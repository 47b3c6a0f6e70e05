"""Operating TicketHub on PostgreSQL: a URL's password never reaches output, errors or the
database itself; libpq's own sources of a password (PGPASSWORD, a password file, a service
file) work; and the SQLite path never loads the PostgreSQL driver.

The role with a password is made by SQL here. On the suite's own server (pgserver, which
trusts local logins) the test also makes that role's logins need the password, by a line
in pg_hba.conf, so "works with PGPASSWORD" is not a trust login in disguise."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pytest
from support import OK_CARD, dump, proc, seed, tickethub_exe

from tickethub_cli.store.postgres import WRITE_LOCK

SECRET = "Pw-7f1dQz-secret"
ROLE = "th_ops_owner"
_n = itertools.count(1)


class Secret:
    def __init__(self, server_url: str, enforced: bool) -> None:
        self.server_url = server_url
        self.enforced = enforced  # logins of ROLE need the password

    def new_database(self) -> str:
        """A new database owned by ROLE; its URL without a password."""
        import psycopg

        name = f"th_ops_{os.getpid()}_{next(_n)}"
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return self.url(name)

    def url(self, database: str, password: str | None = None) -> str:
        parts = urlsplit(self.server_url)
        host = parts.netloc.rpartition("@")[2]
        user = ROLE if password is None else f"{ROLE}:{password}"
        return urlunsplit((parts.scheme, f"{user}@{host}", f"/{database}", parts.query, ""))

    def with_password(self, url: str, password: str = SECRET) -> str:
        return url.replace(f"{ROLE}@", f"{ROLE}:{password}@", 1)

    def libpq_params(self) -> dict[str, str]:
        """host/port as libpq reads them from the server URL (for a service file)."""
        parts = urlsplit(self.server_url)
        params = dict(parse_qsl(parts.query))
        if parts.hostname:
            params.setdefault("host", parts.hostname)
        if parts.port:
            params.setdefault("port", str(parts.port))
        return params


@pytest.fixture(scope="module")
def secret(pg_server) -> Secret:
    import psycopg

    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone():
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{SECRET}'")
        hba = conn.execute("SHOW hba_file").fetchone()[0]
        enforced = False
        if os.access(hba, os.W_OK):
            text = Path(hba).read_text()
            rules = (
                f"local all {ROLE} scram-sha-256\n"
                f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n"
                f"host all {ROLE} ::1/128 scram-sha-256\n"
            )
            if rules not in text:
                Path(hba).write_text(rules + text)
            conn.execute("SELECT pg_reload_conf()")
            enforced = True
    found = Secret(pg_server.url, enforced)
    if enforced:  # the reload is asynchronous: wait until a login without password fails
        probe = found.url("postgres")
        for _ in range(200):
            try:
                psycopg.connect(probe, connect_timeout=2).close()
            except psycopg.OperationalError:
                break
        else:
            pytest.fail("pg_hba.conf reload did not take effect")
    return found


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text, text[-600:]


def human(db: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tickethub_exe(), "--db", db, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_the_password_never_reaches_output_errors_or_the_database(secret, tmp_path):
    base = secret.new_database()
    url = secret.with_password(base)
    seen: list[str] = []

    def run(*args: str, code: int = 0, env: dict[str, str] | None = None):
        out = proc(url, *args, env=env)
        seen.extend([out.stdout, out.stderr])
        assert out.code == code, (args, out.stderr)
        return out

    assert "***" in run("init").json["db"]
    ids = seed(url)
    run("sell", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD)
    run("order", "show", "999", code=3)
    run("doctor")
    for args in (["init"], ["event", "list"], ["doctor"], ["order", "show", "999"]):
        done = human(url, *args)
        seen.extend([done.stdout, done.stderr])
    # errors that name the database: another database, a wrong password, a busy lock
    gone = secret.with_password(secret.url("th_no_such_database"))
    out = proc(gone, "event", "list")
    seen.append(out.stderr)
    assert out.code == 3 and out.error["code"] == "NOT_FOUND", out.stderr
    assert "th_no_such_database" in out.error["message"] and "***" in out.error["message"]
    if secret.enforced:
        wrong = proc(secret.with_password(base, "Wrong-pw-4242"), "event", "list")
        assert wrong.code == 7 and "refused the login" in wrong.error["message"]
        assert "Wrong-pw-4242" not in wrong.stderr + wrong.stdout
    with _lock_held(url):
        busy = proc(url, "event", "create", "--name", "X", "--starts-at", "2027-01-01T00:00Z",
                    env={"TICKETHUB_BUSY_TIMEOUT": "0.2"})  # fmt: skip
        seen.append(busy.stderr)
        assert busy.code == 7 and busy.error["code"] == "DB_BUSY"
        assert "***" in busy.error["message"]
    # a copy out and back: its audit row names the source without the password
    back = str(tmp_path / "back.db")
    run("db", "copy", "--to", back)
    other = secret.with_password(secret.new_database())
    copied = proc(back, "db", "copy", "--to", other)
    seen.extend([copied.stdout, copied.stderr])
    assert copied.code == 0, copied.stderr
    run("db", "copy", "--from", url, "--to", str(tmp_path / "again.db"))
    assert_no_secret(*seen, dump(url), dump(back), dump(other))


class _lock_held:
    """Another session holding the database's write lock (the advisory lock every
    TicketHub write transaction takes) until the block ends."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)

    def __enter__(self) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def test_libpq_password_sources_pgpassword_pgpass_and_service_file(secret, tmp_path, monkeypatch):
    url = secret.new_database()  # no password in it
    assert proc(secret.with_password(url), "init").code == 0
    for name in ("PGPASSWORD", "PGSERVICE", "PGSERVICEFILE"):
        monkeypatch.delenv(name, raising=False)
    clean = {"PGPASSFILE": str(tmp_path / "none")}  # not the tester's ~/.pgpass
    if secret.enforced:
        refused = proc(url, "event", "list", env=clean)
        assert refused.code == 7 and "refused the login" in refused.error["message"]
    by_env = proc(url, "event", "list", env={**clean, "PGPASSWORD": SECRET})
    assert by_env.code == 0 and by_env.json == {"events": []}, by_env.stderr

    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"*:*:*:{ROLE}:{SECRET}\n")
    pgpass.chmod(0o600)
    by_file = proc(url, "event", "list", env={**clean, "PGPASSFILE": str(pgpass)})
    assert by_file.code == 0, by_file.stderr

    service = tmp_path / "pg_service.conf"
    params = {**secret.libpq_params(), "dbname": urlsplit(url).path.lstrip("/")}
    params.update(user=ROLE, password=SECRET)
    service.write_text("[box]\n" + "".join(f"{k}={v}\n" for k, v in params.items()))
    by_service = proc(
        "postgresql://?service=box",
        "event",
        "create",
        "--name",
        "Gig",
        "--starts-at",
        "2027-01-01T20:00Z",
        env={**clean, "PGSERVICEFILE": str(service)},
    )
    assert by_service.code == 0, by_service.stderr
    assert by_service.json["event"]["id"] == 1
    assert_no_secret(by_env.stdout, by_file.stdout, by_service.stdout, by_service.stderr)


def test_the_sqlite_path_loads_neither_psycopg_nor_the_web_stack(tmp_path):
    db = str(tmp_path / "b.db")
    seed(db)
    code = (
        "import sys\n"
        f"sys.argv = ['tickethub', '--db', {db!r}, '--json', 'event', 'list']\n"
        "from tickethub_cli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in ('psycopg', 'psycopg_binary', 'psycopg_c', 'fastapi',"
        " 'starlette', 'uvicorn', 'httpx') if m in sys.modules)\n"
        "sys.stderr.write('LOADED=' + ','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert '"events"' in done.stdout
    assert done.stderr.strip().endswith("LOADED="), done.stderr


def test_a_server_out_of_connections_is_busy_not_a_broken_database():
    """SQLSTATE 53300 (too many clients): a retry can succeed, so DB_BUSY (exit 7 with
    "nothing was changed"), not a DB_ERROR that reads like a broken database."""
    from tickethub_cli.errors import ErrorCode
    from tickethub_cli.store import postgres

    class TooMany(Exception):
        sqlstate = "53300"

    url = "postgresql://box:s3cret@db1/boxoffice"
    err = postgres.error(TooMany("sorry, too many clients already"), url)
    assert err.code is ErrorCode.DB_BUSY
    assert "nothing was changed" in err.message and "s3cret" not in err.message
