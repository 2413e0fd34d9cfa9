"""Logging: JSON lines in production, plain text under DEBUG, optional daily files.

Imported by ``config.settings`` before Django is set up: standard library and
python-json-logger only, no Django import and no app code.

The engine logs with ``extra={"cycle_id": ..., "healing_id": ..., "order_id":
..., "action": ..., "outcome": ...}``; the JSON formatter writes every extra
key as a field, so a line reads::

    {"timestamp": "...", "level": "INFO", "logger": "healing",
     "message": "healing finished", "healing_id": 7, "order_id": 3,
     "action": "REASSIGN_VENDOR", "outcome": "SUCCESS"}

The plain format (``DEBUG``) writes the same extra keys after the message as
``key=value`` pairs, so "healing failed after retries" still names its order
and "Cycle completed" its counts::

    2026-11-20 10:30:00,120 INFO healing healing finished healing_id=7 order_id=3
    action=REASSIGN_VENDOR outcome=SUCCESS

With ``LOG_DIR`` set, lines also go to ``combined-YYYY-MM-DD.log`` (everything
at ``LOG_LEVEL``) and ``error-YYYY-MM-DD.log`` (ERROR and above), the files
the seed's troubleshooting tails (``tail -f logs/combined-*.log``).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JSON_FORMAT = "%(levelname)s %(name)s %(message)s"
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class DailyFileHandler(logging.Handler):
    """Append to ``<dir>/<prefix>-YYYY-MM-DD.log`` for the current UTC day.

    Unlike ``TimedRotatingFileHandler`` it never renames a file: each record
    opens (once per day) the file named after its own day, in append mode.
    Several gunicorn workers and Celery processes can therefore write the same
    day's file at once without one process's rotation cutting off another's.
    """

    def __init__(self, directory: str, prefix: str, encoding: str = "utf-8") -> None:
        super().__init__()
        self.directory = Path(directory)
        self.prefix = prefix
        self.encoding = encoding
        self._day: str | None = None
        self._stream: Any = None
        self._switch_lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, day: str) -> Path:
        return self.directory / f"{self.prefix}-{day}.log"

    def _stream_for(self, created: float) -> Any:
        day = datetime.fromtimestamp(created, tz=UTC).strftime("%Y-%m-%d")
        if day != self._day or self._stream is None:
            with self._switch_lock:
                if day != self._day or self._stream is None:
                    if self._stream is not None:
                        self._stream.close()
                    self._stream = open(self.path_for(day), "a", encoding=self.encoding)  # noqa: SIM115
                    self._day = day
        return self._stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = self._stream_for(record.created)
            stream.write(line + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with self._switch_lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
        super().close()


# What every LogRecord carries; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
# Extras that are objects, not facts worth a line (Django's request logging).
_SKIPPED_EXTRAS = frozenset({"request", "server_time", "color_message"})


class UTCFormatter(logging.Formatter):
    """Plain text with UTC timestamps, like the JSON lines, and the record's
    extra fields as ``key=value`` after the message."""

    def converter(self, timestamp: float | None = None) -> time.struct_time:
        return time.gmtime(timestamp)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = record_extras(record)
        if not extras:
            return line
        pairs = " ".join(f"{key}={value}" for key, value in extras.items())
        head, newline, rest = line.partition("\n")
        # The pairs stay on the message's line, before any traceback.
        return f"{head} {pairs}{newline}{rest}"


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed with ``extra=``, in the order it gave them."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRIBUTES and key not in _SKIPPED_EXTRAS and not key.startswith("_")
    }


def build_logging(*, debug: bool, level: str = "INFO", log_dir: str = "") -> dict[str, Any]:
    """The ``LOGGING`` dict: JSON lines unless ``debug``; daily files with ``log_dir``."""
    formatter = "plain" if debug else "json"
    handlers: dict[str, dict[str, Any]] = {
        "console": {"class": "logging.StreamHandler", "formatter": formatter},
    }
    root_handlers = ["console"]
    if log_dir:
        handlers["combined_file"] = {
            "()": "config.logging.DailyFileHandler",
            "directory": log_dir,
            "prefix": "combined",
            "formatter": formatter,
            "level": level,
        }
        handlers["error_file"] = {
            "()": "config.logging.DailyFileHandler",
            "directory": log_dir,
            "prefix": "error",
            "formatter": formatter,
            "level": "ERROR",
        }
        root_handlers += ["combined_file", "error_file"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"()": "config.logging.UTCFormatter", "format": PLAIN_FORMAT},
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "format": JSON_FORMAT,
                "rename_fields": {"levelname": "level", "name": "logger"},
                # A "timestamp" field in ISO 8601 UTC.
                "timestamp": True,
            },
        },
        "handlers": handlers,
        "root": {"handlers": root_handlers, "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # django-axes announces its version at INFO in every process, each
            # management command included; its lockout warnings still show.
            "axes.apps": {"level": "WARNING"},
            # Celery's own loggers propagate to root (CELERY_WORKER_HIJACK_ROOT_LOGGER
            # is off), so worker lines are JSON too.
            "celery": {"level": level},
        },
    }
