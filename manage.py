#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    from config.cli import database_unreachable_exits
    from config.env import settings_load_or_exit

    # A missing SECRET_KEY or a malformed variable: one line naming the fix,
    # exit 2, for every command (--help included), instead of a traceback;
    # a database that cannot be reached (or does not exist yet): one line, exit 1.
    settings_load_or_exit(program="manage.py")
    with database_unreachable_exits(program="manage.py"):
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
