"""The operator dashboard: data from the API's selectors, the role matrix, the page."""

from __future__ import annotations

import json

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone

from dashboard.selectors import dashboard_data, panels_for_role
from orders.roles import ADMIN, OPERATIONS, VIEWER
from tests.dashboard.conftest import PASSWORD

pytestmark = pytest.mark.django_db

STATISTICS_PANELS = {"outcomes", "recovery", "success_rate", "kpis"}
OPERATOR_PANELS = {"stuck", "notifications", "cycles", "guard", "vendors", "silences", "at_risk"}


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (ADMIN, STATISTICS_PANELS | OPERATOR_PANELS),
        (OPERATIONS, STATISTICS_PANELS | OPERATOR_PANELS),
        (VIEWER, STATISTICS_PANELS),
        (None, set()),
    ],
)
def test_panels_follow_the_role_matrix(role, expected):
    assert panels_for_role(role) == expected


def test_outcomes_per_day_sum_the_statistics_rows(dashboard_dataset):
    data = dashboard_data(role=ADMIN, days=7)

    outcomes = data["outcomes"]
    assert len(outcomes["labels"]) == 7
    assert outcomes["labels"][-1] == timezone.localdate().isoformat()
    series = {s["key"]: s["data"] for s in outcomes["series"]}
    # yesterday, today
    assert series["successful_recoveries"][-2:] == [3, 2]
    assert series["failed_recoveries"][-2:] == [1, 0]
    assert series["manual_interventions"][-2:] == [0, 1]
    assert series["skipped_recoveries"][-2:] == [0, 1]
    assert sum(series["successful_recoveries"][:-2]) == 0
    # SUCCESS / (SUCCESS + FAILED + MANUAL_REQUIRED); a day without attempts is None.
    assert outcomes["success_rate"][-2:] == [75.0, pytest.approx(66.67)]
    assert outcomes["success_rate"][0] is None
    assert outcomes["success_target"] == 90.0


def test_recovery_percentiles_per_day_are_those_of_the_successes(dashboard_dataset):
    recovery = dashboard_data(role=VIEWER, days=2)["recovery"]

    # yesterday 10/20/30 s: p50 20, p95 29; today 4/8 s: p50 6, p95 7.8
    assert recovery["p50_seconds"] == [pytest.approx(20, abs=0.01), pytest.approx(6, abs=0.01)]
    assert recovery["p95_seconds"] == [pytest.approx(29, abs=0.01), pytest.approx(7.8, abs=0.01)]


def test_kpis_are_the_stats_module_evaluation(dashboard_dataset):
    kpis = {k["name"]: k for k in dashboard_data(role=VIEWER, days=7)["kpis"]}

    success = kpis["healing_success_rate"]
    assert success["value"] == pytest.approx(100 * 5 / 7, abs=0.01)
    assert success["target"] == 90.0
    assert success["met"] is False


def test_stuck_orders_now_come_from_detection(dashboard_dataset):
    stuck = dashboard_data(role=OPERATIONS)["stuck"]

    counts = dict(zip(stuck["labels"], stuck["counts"], strict=True))
    assert counts == {"PENDING": 2, "CONFIRMED": 1, "ACCEPTED": 0, "PROCESSING": 0}
    assert stuck["total"] == 3
    assert stuck["oldest_minutes"] >= 300
    assert stuck["on_manual_hold"] == 1


def test_open_notifications_by_severity_link_to_the_admin(dashboard_dataset):
    notifications = dashboard_data(role=ADMIN)["notifications"]

    by_severity = {s["severity"]: s for s in notifications["by_severity"]}
    assert by_severity["CRITICAL"]["count"] == 1
    assert by_severity["HIGH"]["count"] == 1  # the acknowledged one is not open
    assert notifications["total"] == 2
    changelist = reverse("admin:notifications_adminnotification_changelist")
    assert by_severity["HIGH"]["admin_url"].startswith(changelist + "?severity__exact=HIGH")
    # Most severe first, each with its change page.
    first = notifications["latest"][0]
    assert first["severity"] == "CRITICAL"
    assert first["admin_url"] == reverse(
        "admin:notifications_adminnotification_change", args=[first["id"]]
    )


def test_last_cycles_newest_first(dashboard_dataset):
    cycles = dashboard_data(role=ADMIN)["cycles"]

    assert [c["detected"] for c in cycles] == [1, 2, 3]


def test_viewer_data_has_no_operator_panels(dashboard_dataset):
    data = dashboard_data(role=VIEWER)

    assert not OPERATOR_PANELS & data.keys()
    assert {"outcomes", "recovery", "kpis"} <= data.keys()


# --- Views -------------------------------------------------------------------


def test_anonymous_page_redirects_to_the_dashboard_login(client):
    response = client.get(reverse("dashboard:index"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("dashboard:login") + "?next=/dashboard/")


def test_anonymous_json_is_401_not_a_redirect(client):
    response = client.get(reverse("dashboard:data"))

    assert response.status_code == 401


def test_user_without_a_role_is_refused(client, role_user):
    client.force_login(role_user(None))

    assert client.get(reverse("dashboard:index")).status_code == 403
    assert client.get(reverse("dashboard:data")).status_code == 403


def test_viewer_logs_in_on_the_dashboard_login_and_sees_statistics_only(
    client, viewer_user, dashboard_dataset
):
    # VIEWER is not staff: the admin login would refuse it, the dashboard's does not.
    response = client.post(
        reverse("dashboard:login"), {"username": viewer_user.username, "password": PASSWORD}
    )
    assert response.status_code == 302

    page = client.get(reverse("dashboard:index"))

    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="chart-outcomes"' in html
    assert 'id="chart-recovery"' in html
    assert 'id="chart-success"' in html
    assert 'id="panel-stuck"' not in html
    assert 'id="panel-notifications"' not in html
    assert 'id="panel-cycles"' not in html
    embedded = json.loads(
        html.split('id="dashboard-data" type="application/json">')[1].split("</script>")[0]
    )
    assert embedded["role"] == VIEWER
    assert "notifications" not in embedded
    assert embedded["outcomes"]["series"][0]["data"][-1] == 2
    assert "stuck" not in client.get(reverse("dashboard:data")).json()


def test_admin_page_has_every_panel_and_embeds_its_data(client, admin_user, dashboard_dataset):
    client.force_login(admin_user)

    page = client.get(reverse("dashboard:index") + "?days=3")

    html = page.content.decode()
    for panel in ("panel-stuck", "panel-notifications", "panel-cycles", "panel-outcomes"):
        assert f'id="{panel}"' in html
    assert 'id="dashboard-data"' in html
    assert "vendor/chart.js/chart.umd.js" in html
    assert page["Cache-Control"].startswith("max-age=0")
    data = client.get(reverse("dashboard:data") + "?days=3").json()
    assert len(data["outcomes"]["labels"]) == 3
    assert data["stuck"]["total"] == 3


@pytest.mark.parametrize(("raw", "days"), [("0", 1), ("500", 90), ("abc", 14), ("7", 7)])
def test_days_parameter_is_clamped(client, operations_user, raw, days):
    client.force_login(operations_user)

    data = client.get(reverse("dashboard:data"), {"days": raw}).json()

    assert data["days"] == days
    assert len(data["outcomes"]["labels"]) == days


def test_chart_library_is_shipped_as_a_static_file_with_its_licence():
    script = finders.find("vendor/chart.js/chart.umd.js")
    licence = finders.find("vendor/chart.js/LICENSE.md")

    assert script and licence
    with open(script, encoding="utf-8") as fh:
        assert "Chart.js v4" in fh.read(200)
    assert finders.find("dashboard/dashboard.js")


@pytest.mark.django_db
def test_last_cycles_count_outcomes_from_the_healings_not_the_lagging_row():
    from dashboard.selectors import last_cycles
    from tests.factories import HealingActionFactory, HealingCycleFactory

    cycle = HealingCycleFactory(healed=0, failed=0)  # written before its healings finished
    HealingActionFactory(cycle=cycle, recovery_status="SUCCESS")
    HealingActionFactory(cycle=cycle, recovery_status="FAILED")

    (row,) = last_cycles()

    assert (row["id"], row["healed"], row["failed"]) == (cycle.pk, 1, 1)


# --- Issue 20 items 4, 6, 18 ---------------------------------------------------


def test_average_recovery_time_keeps_its_seconds_for_the_display(db):
    """Item 4: 0.26 s and 0.38 s recoveries average 0.32 s, not 0.0 s."""
    from datetime import timedelta

    from tests.dashboard.conftest import healing

    for seconds in (0.26, 0.38):
        healing(
            status="SUCCESS",
            action="RETRY_WORKFLOW",
            detected_ago=timedelta(minutes=2),
            seconds=seconds,
        )

    kpis = {k["name"]: k for k in dashboard_data(role=VIEWER, days=1)["kpis"]}

    average = kpis["avg_recovery_time_minutes"]
    assert average["value"] == 0.01  # the seed's key: minutes, two decimals
    assert average["value_seconds"] == pytest.approx(0.32, abs=0.001)
    assert average["met"] is True


def test_pending_notifications_are_those_neither_acknowledged_nor_resolved(dashboard_dataset):
    """Item 6: the dashboard's "open" is the API's "pending" (notifications_list())."""
    from notifications.selectors import notifications_list
    from tests.factories import AdminNotificationFactory

    AdminNotificationFactory(severity="LOW", resolved_at=timezone.now(), title="Auto-resolved")

    notifications = dashboard_data(role=ADMIN)["notifications"]

    assert notifications["total"] == 2
    titles = {n["title"] for n in notifications["latest"]}
    assert titles == {"Healing failed for ORD-1", "Blast-radius guard tripped"}
    assert titles == set(notifications_list().values_list("title", flat=True))


def test_page_has_a_favicon_plain_headings_and_an_occurrences_header(
    client, admin_user, dashboard_dataset
):
    """Item 18: no internal jargon, every column named, a favicon."""
    import re

    client.force_login(admin_user)

    html = client.get(reverse("dashboard:index")).content.decode()

    assert re.search(r'<link rel="icon"[^>]* href="[^"]*dashboard/favicon\.svg"', html)
    assert finders.find("dashboard/favicon.svg")
    headings = re.findall(r"<h2>(.*?)</h2>", html, flags=re.S)
    assert headings
    for heading in headings:
        assert not re.search(r"\bseed\b|\bKPIs?\b|\bp50\b|\bp95\b", heading), heading
    assert "Daily success rate (target above 90 %)" in html
    assert '<th class="num">Occurrences</th>' in html
    assert "<th>×</th>" not in html


@pytest.mark.parametrize("role", [ADMIN, VIEWER])
def test_half_width_panels_pair_up_for_every_role(client, role_user, dashboard_dataset, role):
    """Item 18: the two-column grid has no empty cell (an even number of
    half-width panels, whatever the role shows)."""
    import re

    client.force_login(role_user(role))

    html = client.get(reverse("dashboard:index")).content.decode()

    classes = re.findall(r'<section class="(panel[^"]*)" id="panel-', html)
    halves = [c for c in classes if "wide" not in c.split()]
    assert halves and len(halves) % 2 == 0, classes
