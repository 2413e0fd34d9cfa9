"""Where the environment comes from, and what a process does when it is wrong.

One loader: ``config.settings`` calls :func:`env_file_load` (in its first part,
``config/settings/base.py``) before it reads a single variable, so
``manage.py`` (``migrate`` included), the Celery worker and beat, Flower and
gunicorn's Django app all see the same ``.env`` the same way (python-dotenv).
A variable already in the process environment wins over the file, so
``DEBUG=true make run`` and a platform's own variables still apply.

``ENV_FILE`` names another file; ``ENV_FILE=`` (empty) reads none (the test
suite sets it so a developer's ``.env`` never reaches the tests).

Imported by ``config.settings`` before Django is set up: no app code here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent


def env_file_path(*, base_dir: Path = BASE_DIR) -> Path | None:
    """The ``.env`` file to read: ``ENV_FILE`` if set (empty = none), else ``<base>/.env``."""
    name = os.environ.get("ENV_FILE")
    if name is None:
        return base_dir / ".env"
    if not name.strip():
        return None
    path = Path(name)
    return path if path.is_absolute() else base_dir / path


def env_file_load(*, base_dir: Path = BASE_DIR) -> Path | None:
    """Complete ``os.environ`` from the ``.env`` file (never overriding); the file read."""
    path = env_file_path(base_dir=base_dir)
    if path is None:
        return None
    if not path.is_file():
        if os.environ.get("ENV_FILE"):
            raise ImproperlyConfigured(f"ENV_FILE={os.environ['ENV_FILE']} does not exist")
        return None
    load_dotenv(path, override=False)
    return path


def settings_load_or_exit(*, program: str) -> None:
    """Load Django's settings now; on a configuration error print one line and exit 2.

    ``config.settings`` raises ImproperlyConfigured with a message that names
    the fix (e.g. "SECRET_KEY is not set ..."); a 30-line traceback around it
    hides that, so every entry point (manage.py, the Celery app) ends here.
    """
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018  (the access imports config.settings)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"{program}: configuration error: {exc}\n")
        raise SystemExit(2) from None
