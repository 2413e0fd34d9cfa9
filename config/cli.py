"""Command-line helpers shared by the management commands.

argparse turns a ``ValueError`` from a ``type=`` function into "invalid
<function name> value", which reads as "invalid _positive value"; these types
raise ``ArgumentTypeError`` with the rule instead, so a bad number is one
readable line ("argument --limit: must be at least 1, got 0") and exit 2 on
the command line (a ``CommandError`` under ``call_command``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# rebuild_metrics --days: a century of daily rows is already more than the
# table will ever hold; a larger number only overflows date arithmetic.
DAYS_BACK_MAX = 36_500


def int_in_range(*, name: str, minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number in [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,}, got {value:,}")
        return value

    parse.__name__ = name  # argparse's fallback wording, should it ever be used
    return parse


positive_int = int_in_range(name="a positive whole number", minimum=1)
days_back = int_in_range(name="a number of days", minimum=1, maximum=DAYS_BACK_MAX)


@contextmanager
def closed_pipe_ignored(stream: object = None) -> Iterator[None]:
    """Let ``command | head`` end quietly: a reader that closed its end of the
    pipe is not an error worth a BrokenPipeError traceback.

    ``stream`` is what the block writes to (default ``sys.stdout``; a command's
    ``self.stdout`` wrapper is unwrapped). When it is the process's stdout,
    that file descriptor is pointed at /dev/null so
    Python's last flush at exit does not raise again (the recipe in the
    ``signal`` module's documentation on SIGPIPE).
    """
    target: Any = sys.stdout if stream is None else getattr(stream, "_out", stream)
    try:
        yield
        target.flush()
    except BrokenPipeError:
        if target is sys.stdout or target is sys.__stdout__:
            _discard(target)


def _discard(stream: Any) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)


@contextmanager
def database_unreachable_exits(*, program: str) -> Iterator[None]:
    """A command that cannot connect to its database: one line and exit 1.

    The usual cause on a new machine is a PostgreSQL database that was never
    created (``cp .env.example .env && make run`` before ``make run`` created
    it): psycopg's "connection failed: ... database ... does not exist" under
    a 40-line traceback. Other database errors keep their traceback.
    """
    from django.db import OperationalError

    try:
        yield
    except OperationalError as exc:
        reason = " ".join(str(exc).split())
        if not reason.startswith("connection failed") and "unable to open database" not in reason:
            raise
        sys.stderr.write(
            f"{program}: cannot connect to the database: {reason[:400]} "
            "(is PostgreSQL running? `python manage.py create_database` creates a missing one)\n"
        )
        raise SystemExit(1) from None
