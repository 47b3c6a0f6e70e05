"""Settings: the one place that reads the environment, each value parsed and bounded here.

A `Settings` is built once (by the CLI from its options and the environment, by a server at
start-up) and carried by every `Session`; the domain reads `session.settings`, never
`os.environ`, so two sessions in one process can differ and nothing leaks between requests.

An environment variable is input like any other: a value that cannot be right is refused
with INVALID_INPUT before anything is written, never guessed at or left to crash later.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .errors import invalid, ref

# Ten years either way is plenty for drills and expiry tests, and keeps every time this
# process stamps inside what datetime, SQLite integers and 4-digit years can represent.
MAX_CLOCK_OFFSET_S = 10 * 366 * 86400
DEFAULT_DB_PATH = "tickethub.db"
DEFAULT_BUSY_BUDGET_S = 10.0
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a session needs to know about where and how it runs.

    db_path: the database file (--db, TICKETHUB_DB, else ./tickethub.db).
    operator: who acts when nobody says (--operator, TICKETHUB_OPERATOR; None: the OS user).
    json, debug: output preferences of the CLI (--json/TICKETHUB_JSON, --debug/…_DEBUG).
    busy_timeout_s: how long a write waits for the lock (TICKETHUB_BUSY_TIMEOUT, 0..3600).
    clock_offset_s: the drill clock shift (TICKETHUB_CLOCK_OFFSET), bounded.
    fault: the crash-test fault point (TICKETHUB_FAULT), "" when none.
    webhook_secret: the provider's signing secret (TICKETHUB_WEBHOOK_SECRET), checked when
    a callback needs it (`require_webhook_secret`), since only callbacks do."""

    db_path: str = DEFAULT_DB_PATH
    operator: str | None = None
    json: bool = False
    debug: bool = False
    busy_timeout_s: float = DEFAULT_BUSY_BUDGET_S
    clock_offset_s: float = 0.0
    fault: str = ""
    webhook_secret: str = ""

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        db: str | None = None,
        operator: str | None = None,
        json: bool = False,
        debug: bool = False,
    ) -> Settings:
        """The environment (os.environ unless given), overridden by options given."""
        env = os.environ if environ is None else environ
        return cls(
            db_path=db or db_path_from_env(env),
            operator=operator or operator_from_env(env),
            json=json or env_flag("TICKETHUB_JSON", env),
            debug=debug or env_flag("TICKETHUB_DEBUG", env),
            clock_offset_s=clock_offset_seconds(env),  # refused first, as it always was
            busy_timeout_s=busy_timeout_from_env(env),
            fault=fault_from_env(env),
            webhook_secret=env.get("TICKETHUB_WEBHOOK_SECRET", ""),
        )

    def with_db(self, path: str) -> Settings:
        return replace(self, db_path=path)

    def with_operator(self, operator: str | None) -> Settings:
        return replace(self, operator=operator)

    def default_operator(self) -> str:
        """The operator option or TICKETHUB_OPERATOR, else the OS user. A name that is not
        UTF-8 could not be stored in the audit log: refused, not mangled."""
        if self.operator:
            return _utf8_operator(self.operator, "TICKETHUB_OPERATOR")
        return os_user()

    def require_webhook_secret(self) -> str:
        """A blank secret signs nothing, so it counts as missing."""
        secret = self.webhook_secret
        if not secret.strip():
            raise invalid(
                "TICKETHUB_WEBHOOK_SECRET is not set (or blank)",
                hint="export the provider's signing secret",
            )
        if not is_utf8(secret):
            raise invalid("TICKETHUB_WEBHOOK_SECRET must be UTF-8 text")
        return secret


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def env_flag(name: str, env: Mapping[str, str] | None = None) -> bool:
    """A boolean variable: 1, true, yes or on (any case) is set; anything else is not."""
    return _env(env).get(name, "").strip().lower() in _TRUE


def db_path_from_env(env: Mapping[str, str] | None = None) -> str:
    return _env(env).get("TICKETHUB_DB", "").strip() or DEFAULT_DB_PATH


def operator_from_env(env: Mapping[str, str] | None = None) -> str | None:
    return _env(env).get("TICKETHUB_OPERATOR", "").strip() or None


def fault_from_env(env: Mapping[str, str] | None = None) -> str:
    return _env(env).get("TICKETHUB_FAULT", "").strip()


def busy_timeout_from_env(env: Mapping[str, str] | None = None) -> float:
    """TICKETHUB_BUSY_TIMEOUT: seconds a write waits for the lock (10 when unset)."""
    from .errors import ErrorCode, TicketHubError

    raw = _env(env).get("TICKETHUB_BUSY_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_BUSY_BUDGET_S
    try:
        value = float(raw)
    except ValueError:
        raise TicketHubError(
            ErrorCode.INVALID_INPUT, f"TICKETHUB_BUSY_TIMEOUT must be seconds, got {raw!r}"
        ) from None
    if not 0 <= value <= 3600:
        raise TicketHubError(ErrorCode.INVALID_INPUT, "TICKETHUB_BUSY_TIMEOUT must be 0..3600")
    return value


def clock_offset_seconds(env: Mapping[str, str] | None = None) -> float:
    """TICKETHUB_CLOCK_OFFSET: seconds added to the clock (0 when unset)."""
    raw = _env(env).get("TICKETHUB_CLOCK_OFFSET", "").strip()
    if not raw:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        raise invalid(f"TICKETHUB_CLOCK_OFFSET must be seconds, got {raw[:40]!r}") from None
    return check_clock_offset(seconds)


def check_clock_offset(seconds: float) -> float:
    """A finite shift of at most MAX_CLOCK_OFFSET_S either way."""
    if not math.isfinite(seconds) or abs(seconds) > MAX_CLOCK_OFFSET_S:
        raise invalid(
            f"TICKETHUB_CLOCK_OFFSET must be within ±{MAX_CLOCK_OFFSET_S} seconds (10 years)",
            hint="unset it to use the real clock",
        )
    return seconds


def webhook_secret() -> str:
    """TICKETHUB_WEBHOOK_SECRET from the environment, checked (for callers without a
    session; a session's own is `session.settings.require_webhook_secret()`)."""
    return Settings(
        webhook_secret=_env(None).get("TICKETHUB_WEBHOOK_SECRET", "")
    ).require_webhook_secret()


def default_operator() -> str:
    """TICKETHUB_OPERATOR, else the OS user (for callers without settings)."""
    return Settings(operator=operator_from_env()).default_operator()


def os_user() -> str:
    """The OS user (LOGNAME, USER, … as getpass reads them), else uid<N>."""
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name on this machine is not an error
        return f"uid{os.getuid()}"
    return _utf8_operator(user, "the OS user name (LOGNAME/USER)")


def _utf8_operator(name: str, source: str) -> str:
    if not is_utf8(name):
        raise invalid(
            f"{source} is not UTF-8 text",
            hint=f"set {ref('operator')} NAME or TICKETHUB_OPERATOR",
            field="operator",
        )
    return name


def is_utf8(text: str) -> bool:
    """False for text holding surrogates: bytes that were not UTF-8 in argv or the
    environment (Python keeps them as lone surrogates, which nothing can store or print)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
