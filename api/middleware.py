"""Static files from the web process (Swagger UI's sidecar assets among them)."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise serving from the app folders (``WHITENOISE_USE_FINDERS``).

    Skips STATIC_ROOT until ``collectstatic`` has created it, instead of
    warning on every start of a process that never ran it.
    """

    def add_files(self, root: Any, prefix: str | None = None) -> None:
        is_static_root = bool(settings.STATIC_ROOT) and os.fspath(root) == os.fspath(
            settings.STATIC_ROOT
        )
        if is_static_root and not os.path.isdir(root):
            return
        super().add_files(root, prefix)
