"""What an operator reads instead of enum names (issue 19: "the reason a healing did nothing")."""

from __future__ import annotations

from typing import Any

from healing.models import SkipReason

SKIP_REASON_WORDS: dict[str, str] = {
    SkipReason.RECOVERED: "Nothing to do: the order moved on by itself before the healing ran.",
    SkipReason.GUARD: (
        "Held back by the blast-radius guard: too many orders were stuck at once, so "
        "reassigning, cancelling and escalating were paused."
    ),
    SkipReason.DRY_RUN: (
        "Dry run: the rule only records what it would have done; the order was not touched."
    ),
    SkipReason.ORDER_CLOSED: (
        "Nothing to do: the order was already finished (delivered or cancelled)."
    ),
    SkipReason.VENDOR_CIRCUIT_OPEN: (
        "Waiting: the vendor's systems are failing (circuit open), so no call was made; "
        "this was not counted as an attempt."
    ),
    SkipReason.SILENCED: (
        "Held by a silence (maintenance window): detected and recorded, no action, nobody paged."
    ),
}


def skip_reason_words(*, reason: str, silence_id: int | None = None, comment: str = "") -> str:
    """A skip reason as a sentence; empty for a healing that was not skipped."""
    if not reason:
        return ""
    words = SKIP_REASON_WORDS.get(reason, reason.replace("_", " ").capitalize())
    if reason == SkipReason.SILENCED and silence_id:
        words = (
            f"Held by silence #{silence_id}"
            + (f" ({comment})" if comment else "")
            + (": detected and recorded, no action, nobody paged.")
        )
    return words


def label(choices: Any, value: str) -> str:
    """A TextChoices value's label, or the value itself when unknown or empty."""
    try:
        return str(choices(value).label) if value else ""
    except ValueError:
        return value
