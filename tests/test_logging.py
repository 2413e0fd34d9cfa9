"""Logs: JSON lines with the engine's fields, plain under DEBUG, daily files with LOG_DIR."""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime

import pytest
import time_machine
from django.conf import settings

from config.logging import DailyFileHandler, build_logging
from healing.execution import healing_execute, healing_initiate
from tests.factories import OrderFactory, VendorFactory


@pytest.fixture
def configure():
    """Apply a logging config for one test, then put the project's back."""

    def apply(config: dict) -> None:
        logging.config.dictConfig(config)

    yield apply
    for handler in logging.getLogger().handlers:
        handler.close()
    logging.config.dictConfig(settings.LOGGING)


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_project_logging_is_json_when_debug_is_off():
    assert settings.DEBUG is False
    console = settings.LOGGING["handlers"]["console"]
    formatter = settings.LOGGING["formatters"][console["formatter"]]
    assert formatter["()"] == "pythonjsonlogger.json.JsonFormatter"


def test_json_lines_carry_the_engine_fields(configure, tmp_path):
    configure(build_logging(debug=False, log_dir=str(tmp_path)))
    with time_machine.travel(datetime(2026, 11, 20, 10, 30, tzinfo=UTC), tick=False):
        logging.getLogger("healing").info(
            "healing finished",
            extra={
                "cycle_id": 4,
                "healing_id": 7,
                "order_id": 3,
                "action": "REASSIGN_VENDOR",
                "outcome": "SUCCESS",
            },
        )

    (line,) = _lines(tmp_path / "combined-2026-11-20.log")
    assert line["message"] == "healing finished"
    assert (line["level"], line["logger"]) == ("INFO", "healing")
    assert {k: line[k] for k in ("cycle_id", "healing_id", "order_id", "action", "outcome")} == {
        "cycle_id": 4,
        "healing_id": 7,
        "order_id": 3,
        "action": "REASSIGN_VENDOR",
        "outcome": "SUCCESS",
    }
    assert line["timestamp"].startswith("2026-11-20T10:30:00")


def test_errors_also_go_to_the_error_file(configure, tmp_path):
    configure(build_logging(debug=False, log_dir=str(tmp_path)))
    with time_machine.travel(datetime(2026, 11, 20, 10, 30, tzinfo=UTC), tick=False):
        logging.getLogger("healing.tasks").info("routine")
        try:
            raise RuntimeError("gateway down")
        except RuntimeError:
            logging.getLogger("healing").exception("cycle failed", extra={"cycle_id": 9})

    combined = _lines(tmp_path / "combined-2026-11-20.log")
    errors = _lines(tmp_path / "error-2026-11-20.log")
    assert [r["message"] for r in combined] == ["routine", "cycle failed"]
    assert [r["message"] for r in errors] == ["cycle failed"]
    assert errors[0]["cycle_id"] == 9
    assert "RuntimeError: gateway down" in errors[0]["exc_info"]


def test_daily_files_switch_at_midnight_utc(configure, tmp_path):
    configure(build_logging(debug=False, log_dir=str(tmp_path)))
    log = logging.getLogger("healing")
    with time_machine.travel(datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC), tick=False):
        log.info("before midnight")
    with time_machine.travel(datetime(2026, 11, 21, 0, 0, 1, tzinfo=UTC), tick=False):
        log.info("after midnight")

    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("combined")) == [
        "combined-2026-11-20.log",
        "combined-2026-11-21.log",
    ]
    assert [r["message"] for r in _lines(tmp_path / "combined-2026-11-21.log")] == [
        "after midnight"
    ]


def test_two_handlers_on_one_file_append_without_losing_lines(tmp_path):
    # Two processes (here two handlers) write the same day's file: append
    # mode, no renames, so neither truncates the other.
    first, second = (
        DailyFileHandler(str(tmp_path), "combined"),
        DailyFileHandler(str(tmp_path), "combined"),
    )
    record = logging.LogRecord("healing", logging.INFO, __file__, 1, "line %s", (1,), None)
    try:
        for n in range(5):
            record.args = (n,)
            (first if n % 2 else second).handle(record)
    finally:
        first.close()
        second.close()
    (path,) = tmp_path.iterdir()
    assert path.read_text().splitlines() == [f"line {n}" for n in range(5)]


def test_plain_text_when_debug(configure, tmp_path):
    configure(build_logging(debug=True, log_dir=str(tmp_path)))
    logging.getLogger("healing").info("Self-healing worker: Starting cycle", extra={"cycle_id": 1})

    (path,) = [p for p in tmp_path.iterdir() if p.name.startswith("combined")]
    text = path.read_text()
    assert "INFO healing Self-healing worker: Starting cycle" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_plain_text_shows_the_extra_fields_after_the_message(configure, tmp_path):
    # Under DEBUG the lines used to drop them: "healing failed after retries"
    # named no order and "Cycle completed" had no counts.
    configure(build_logging(debug=True, log_dir=str(tmp_path)))
    log = logging.getLogger("healing")
    log.error("healing failed after retries", extra={"healing_id": 7, "order_id": 3})
    log.info(
        "Self-healing worker: Cycle completed",
        extra={"cycle_id": 4, "detected": 12, "healed": 10, "failed": 2},
    )
    try:
        raise RuntimeError("gateway down")
    except RuntimeError:
        log.exception("cycle failed", extra={"cycle_id": 9})

    (path,) = [p for p in tmp_path.iterdir() if p.name.startswith("combined")]
    lines = path.read_text().splitlines()
    assert lines[0].endswith("ERROR healing healing failed after retries healing_id=7 order_id=3")
    assert lines[1].endswith("Cycle completed cycle_id=4 detected=12 healed=10 failed=2")
    # The fields stay on the message's line, the traceback below it.
    assert lines[2].endswith("ERROR healing cycle failed cycle_id=9")
    assert lines[-1] == "RuntimeError: gateway down"


def test_plain_text_leaves_out_request_objects():
    from config.logging import UTCFormatter

    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Not Found", (), None
    )
    record.request = object()
    record.status_code = 404
    assert UTCFormatter("%(message)s").format(record) == "Not Found status_code=404"


def test_no_files_without_log_dir():
    config = build_logging(debug=False, log_dir="")
    assert set(config["handlers"]) == {"console"}


@pytest.mark.django_db(transaction=True)
def test_a_real_healing_logs_its_ids_action_and_outcome(configure, tmp_path):
    configure(build_logging(debug=False, log_dir=str(tmp_path)))
    VendorFactory(acceptance_rate=0.5)
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    healing = healing_initiate(order=order, trigger="CLI")

    healing_execute(healing_id=healing.pk, token=healing.claim_token)

    (path,) = [p for p in tmp_path.iterdir() if p.name.startswith("combined")]
    finished = [r for r in _lines(path) if r["message"] == "healing finished"]
    assert finished, _lines(path)
    assert finished[-1]["healing_id"] == healing.pk
    assert finished[-1]["order_id"] == order.pk
    assert finished[-1]["action"] == "REASSIGN_VENDOR"
    assert finished[-1]["outcome"] == "SUCCESS"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("trigger", "label"),
    [("BEAT", "Self-healing worker"), ("API", "Self-healing cycle (API)")],
)
def test_only_worker_cycles_say_self_healing_worker(caplog, trigger, label):
    # The web process runs API-triggered cycles: "Self-healing worker:
    # Starting cycle" there sent operators looking for a worker.
    from healing.cycle import healing_cycle_run

    OrderFactory(status="CONFIRMED", stuck_minutes=75)
    with caplog.at_level(logging.INFO, logger="healing"):
        healing_cycle_run(trigger=trigger, dispatch=lambda healings: None)

    messages = [r.getMessage() for r in caplog.records]
    assert f"{label}: Starting cycle" in messages
    if trigger == "API":
        assert not [m for m in messages if m.startswith("Self-healing worker")]
    completed = next(r for r in caplog.records if r.getMessage().endswith("Cycle completed"))
    assert completed.cycle_id and completed.detected == 1
