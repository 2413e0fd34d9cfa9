"""Settings for the self-healing orders service.

Every value comes from the environment (12-factor). With nothing set the
service runs on an embedded default: a SQLite file and Celery tasks executed
in-process, so a newcomer can try it without any server.

The settings are split into parts, imported below in order; a part reads an
earlier part's values (``DEBUG``, the ``env_*`` helpers) by importing them
from it:

- ``base``: ``.env`` loading, the ``env_*`` helpers, core, auth, security, cache
- ``database``: ``DATABASES``
- ``healing``: healing, vendor gateway and edges, notifications, vendor health
- ``celery``: Celery, brokers and queues, ``BEAT_SCHEDULE``
- ``web``: REST framework, JWT, OpenAPI, API, logging, metrics, lockout, CSP
"""

# isort: off
from .base import *  # noqa: F403
from .database import *  # noqa: F403
from .healing import *  # noqa: F403
from .celery import *  # noqa: F403
from .web import *  # noqa: F403

# isort: on
# A star import skips names with a leading underscore; these two have always
# been (upper-case, so Django-visible) settings, so they stay so.
from .celery import _EXCHANGE_TYPE, _QUEUE_ARGUMENTS  # noqa: F401
