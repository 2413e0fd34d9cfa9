"""CPU and statements of the in-process heal path, per heal.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_heal_path \\
    ALLOW_INSECURE_DEFAULTS=true python -m bench.heal_path --orders 20000 --stuck 3000

Seeds the database (its name must contain ``bench``), runs one cycle whose
dispatch heals every healing in this process with the simulated gateway
answering at once, and prints CPU seconds (process time: robust to other
load on the machine) and SQL statements per heal, plus wall time. The
measurement the restructure (issue 13) and the heal-path work (issue 15)
compare before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--stuck", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=1, help="Reseed and measure again.")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    if "bench" not in settings.DATABASES["default"]["NAME"]:
        sys.exit("bench.heal_path replaces its database's data: use a database named *bench*")
    from healing.cycle import healing_cycle_run
    from healing.errors import HealingTransientError
    from healing.execution import healing_execute

    call_command("migrate", verbosity=0)
    runs: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        call_command("seed_marketplace", orders=args.orders, stuck=args.stuck, quiet=True)
        statements = 0
        cpu: list[float] = []

        def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            nonlocal statements
            statements += 1
            return execute(sql, params, many, context)

        def inline(pairs: list[tuple[int, str]], *, cpu: list[float] = cpu) -> None:
            for healing_id, token in pairs:
                current = token
                started = time.process_time()
                for retries in range(3):
                    try:
                        with connection.execute_wrapper(count):
                            healing_execute(healing_id=healing_id, token=current, retries=retries)
                        break
                    except HealingTransientError as exc:
                        current = str(exc.token)
                cpu.append(time.process_time() - started)

        with override_settings(
            VENDOR_GATEWAY_BACKEND="simulated",
            VENDOR_GATEWAY_SIM_LATENCY_MS=0,
            VENDOR_GATEWAY_SIM_FAILURE_RATE=0.0,
        ):
            wall = time.perf_counter()
            healing_cycle_run(trigger="CLI", dispatch=inline)
            wall = time.perf_counter() - wall
        runs.append(
            {
                "heals": len(cpu),
                "cpu_ms_per_heal": round(1000 * statistics.fmean(cpu), 3),
                "cpu_ms_per_heal_p50": round(1000 * statistics.median(cpu), 3),
                "statements_per_heal": round(statements / len(cpu), 3),
                "wall_s": round(wall, 2),
            }
        )
        print(json.dumps(runs[-1]), flush=True)


if __name__ == "__main__":
    main()
