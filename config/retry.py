"""The project's one retry delay: capped exponential backoff with equal jitter."""

from __future__ import annotations

import random


def backoff_seconds(retries: int, *, base: float, cap: float) -> float:
    """Retry n waits between half and all of ``base * 2**n`` (capped), so delays
    grow yet never align across tasks."""
    ceiling = min(cap, base * (2**retries))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
