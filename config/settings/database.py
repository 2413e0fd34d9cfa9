"""Settings, part 2: the database (SQLite by default, DATABASE_URL otherwise)."""

from __future__ import annotations

import dj_database_url

from .base import BASE_DIR, env_bool, env_int, env_str

# --- Database ---------------------------------------------------------------

SQLITE_PATH = env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
DATABASE_URL = env_str("DATABASE_URL")
# The heal path's fixed statements (orders.sql) bind their values server-side
# on PostgreSQL, and psycopg prepares each one once a connection has run it
# five times (``prepare_threshold``, which Django leaves off): PostgreSQL then
# runs it again without parsing or planning it (issue 15: that was 42 % of
# the server's CPU a heal). Behind pgbouncer older than 1.21 a named prepared
# statement does not follow the client to the next server connection: off by
# default there (the statements then bind client-side, as every ORM query does).
DB_PREPARED_STATEMENTS = env_bool(
    "DB_PREPARED_STATEMENTS", default=env_str("DB_POOLER") != "pgbouncer"
)
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
            conn_health_checks=True,
        )
    }
    # --- Database timeouts and keepalives (issue 16) ---
    # No statement waits on a lock for long, no statement runs away, no
    # transaction left idle by a frozen worker holds its locks, and a
    # partitioned connection is noticed in about a minute, not two hours.
    # 0 turns a timeout off. Behind pgbouncer (transaction mode) the startup
    # "options" are not forwarded: set DB_SERVER_OPTIONS=false and put the
    # timeouts on the database role (ALTER ROLE ... SET), see README.
    DB_LOCK_TIMEOUT_MS = env_int("DB_LOCK_TIMEOUT_MS", 5000)
    DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 60000)
    DB_IDLE_IN_TRANSACTION_TIMEOUT_MS = env_int("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60000)
    _postgres = "postgresql" in DATABASES["default"]["ENGINE"]
    # Behind pgbouncer in transaction mode (deploy/pgbouncer.ini): no
    # server-side cursors (they outlive the lent connection's transaction).
    DB_POOLER = env_str("DB_POOLER")
    if DB_POOLER == "pgbouncer":
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DB_KEEPALIVES_IDLE = env_int("DB_KEEPALIVES_IDLE", 30)
    DB_KEEPALIVES_INTERVAL = env_int("DB_KEEPALIVES_INTERVAL", 10)
    DB_KEEPALIVES_COUNT = env_int("DB_KEEPALIVES_COUNT", 3)
    # Keepalives only probe an idle connection: once one end has sent data the
    # dead peer never acknowledges, the kernel retransmits for about 15
    # minutes instead. This bounds that too, on both ends (0: the kernel's).
    DB_TCP_USER_TIMEOUT_MS = env_int(
        "DB_TCP_USER_TIMEOUT_MS",
        (DB_KEEPALIVES_IDLE + DB_KEEPALIVES_INTERVAL * DB_KEEPALIVES_COUNT) * 1000,
    )
    if _postgres and env_bool("DB_SERVER_OPTIONS", default=DB_POOLER != "pgbouncer"):
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
            f"-c lock_timeout={DB_LOCK_TIMEOUT_MS} "
            f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS} "
            f"-c idle_in_transaction_session_timeout={DB_IDLE_IN_TRANSACTION_TIMEOUT_MS} "
            # The server's side of the keepalives. A worker host cut off in the
            # middle of a pipeline (statements sent, their Sync not) leaves its
            # backend waiting for the rest, not idle in transaction: no timeout
            # above applies, and its row locks stay until the server's TCP
            # notices the dead peer, two hours (idle) or 15 minutes (data in
            # flight) by the kernel's defaults. With these it is the same
            # minute as the client's (tests/multihost/test_hosts.py).
            f"-c tcp_keepalives_idle={DB_KEEPALIVES_IDLE} "
            f"-c tcp_keepalives_interval={DB_KEEPALIVES_INTERVAL} "
            f"-c tcp_keepalives_count={DB_KEEPALIVES_COUNT} "
            f"-c tcp_user_timeout={DB_TCP_USER_TIMEOUT_MS} "
            # JIT compiles a plan whose estimate passes jit_above_cost: on a
            # stuck-order scan after the clocks moved that was 190 ms of
            # compiling for a 30 ms query (issue 15). Short OLTP statements
            # never win it back.
            f"-c jit={'on' if env_bool('DB_JIT', default=False) else 'off'}"
        )
    if _postgres and DB_PREPARED_STATEMENTS:
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
    if _postgres:
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            {
                "keepalives": 1,
                "keepalives_idle": DB_KEEPALIVES_IDLE,
                "keepalives_interval": DB_KEEPALIVES_INTERVAL,
                "keepalives_count": DB_KEEPALIVES_COUNT,
                "tcp_user_timeout": DB_TCP_USER_TIMEOUT_MS,
            }
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                # WAL lets the demo's web process read while the healing thread
                # writes; IMMEDIATE transactions take the write lock up front so
                # two writers queue on the busy timeout instead of failing with
                # "database is locked" on lock upgrade.
                "init_command": (
                    "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA busy_timeout=20000;"
                ),
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
if env_str("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
