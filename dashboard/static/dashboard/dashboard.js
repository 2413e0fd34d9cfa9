/* The operator dashboard: draws the panels from the JSON embedded in the page,
   then refreshes from the data endpoint every few seconds. Chart.js is the
   vendored static/vendor/chart.js/chart.umd.js (no CDN). */
(function () {
  "use strict";
  const root = document.getElementById("dashboard");
  const charts = {};
  window.dashboardCharts = charts;
  const COLORS = {
    successful_recoveries: "#2e7d32", failed_recoveries: "#c62828",
    manual_interventions: "#ef6c00", skipped_recoveries: "#90a4ae", active: "#1565c0",
  };
  // Not an outcome's colour: a stuck order is not (yet) "manual required".
  const STUCK_COLOR = "#00838f";
  const KPI_LABELS = {
    healing_success_rate: "Healing success rate",
    avg_recovery_time_minutes: "Average recovery time",
    manual_intervention_rate: "Manual intervention rate",
    admin_notification_rate: "Admin notification rate",
  };

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => { if (v !== null && v !== undefined) node.setAttribute(k, v); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function upsertChart(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    const existing = charts[id];
    if (existing) {
      existing.data.labels = config.data.labels;
      config.data.datasets.forEach((ds, i) => {
        if (existing.data.datasets[i]) existing.data.datasets[i].data = ds.data;
        else existing.data.datasets.push(ds);
      });
      existing.update("none");
      return;
    }
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    charts[id] = new Chart(canvas, config);
  }

  function unit(kpi) {
    if (kpi.value === null || kpi.value === undefined) return "—";
    if (kpi.unit === "percent") return kpi.value.toFixed(1) + " %";
    // Sub-minute recoveries (the demo's) read better in seconds: from the
    // unrounded mean (value is rounded to 0.01 min, so 0.3 s would read 0.0 s).
    const seconds = kpi.value_seconds !== undefined && kpi.value_seconds !== null ? kpi.value_seconds : kpi.value * 60;
    if (seconds < 10) return seconds.toFixed(2) + " s";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    return (seconds / 60).toFixed(2) + " min";
  }

  function drawKpis(kpis) {
    const box = document.getElementById("kpi-tiles");
    box.replaceChildren();
    (kpis || []).forEach((kpi) => {
      const state = kpi.met === null ? "none" : kpi.met ? "met" : "missed";
      const tile = el("div", { class: "tile " + state, "data-kpi": kpi.name, "data-met": String(kpi.met) });
      tile.append(el("div", { class: "muted" }, KPI_LABELS[kpi.name] || kpi.name));
      tile.append(el("div", { class: "value" }, unit(kpi)));
      const sign = kpi.comparison === "gt" ? "> " : "< ";
      const target = kpi.unit === "percent" ? kpi.target + " %" : kpi.target + " min";
      const verdict = kpi.met === null ? "no data yet" : kpi.met ? "target met" : "target missed";
      tile.append(el("div", { class: "muted" }, "target " + sign + target + " · " + verdict + " · n=" + kpi.sample_size));
      box.append(tile);
    });
  }

  function drawOutcomes(outcomes) {
    upsertChart("chart-outcomes", {
      type: "bar",
      data: {
        labels: outcomes.labels,
        datasets: outcomes.series.map((s) => ({ label: s.label, data: s.data, backgroundColor: COLORS[s.key], stack: "outcomes" })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
    });
    upsertChart("chart-success", {
      type: "line",
      data: {
        labels: outcomes.labels,
        datasets: [
          { label: "Success rate %", data: outcomes.success_rate, borderColor: "#2e7d32", backgroundColor: "#2e7d32", spanGaps: true },
          { label: "Target " + outcomes.success_target + " %", data: outcomes.labels.map(() => outcomes.success_target),
            borderColor: "#c62828", borderDash: [6, 4], pointRadius: 0 },
        ],
      },
      options: { scales: { y: { min: 0, max: 100 } } },
    });
  }

  function drawRecovery(recovery) {
    upsertChart("chart-recovery", {
      type: "line",
      data: {
        labels: recovery.labels,
        datasets: [
          { label: "median (s)", data: recovery.p50_seconds, borderColor: "#1565c0", backgroundColor: "#1565c0", spanGaps: true },
          { label: "95th percentile (s)", data: recovery.p95_seconds, borderColor: "#6a1b9a", backgroundColor: "#6a1b9a", spanGaps: true },
        ],
      },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: "seconds" } } } },
    });
  }

  function drawStuck(stuck) {
    upsertChart("chart-stuck", {
      type: "bar",
      data: { labels: stuck.labels, datasets: [{ label: "Stuck, awaiting healing", data: stuck.counts, backgroundColor: STUCK_COLOR }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    document.getElementById("stuck-total").textContent = (stuck.truncated ? "≥ " : "") + stuck.total + " total";
    document.getElementById("stuck-note").textContent =
      "Oldest " + (stuck.oldest_minutes === null ? "—" : stuck.oldest_minutes + " min") +
      " · " + stuck.on_manual_hold + " held for a person (manual intervention)";
  }

  function drawNotifications(notifications) {
    const all = document.getElementById("notifications-all");
    if (notifications.admin_url) all.href = notifications.admin_url; else all.remove();
    const list = document.getElementById("notification-severities");
    list.replaceChildren();
    notifications.by_severity.forEach((s) => {
      const li = el("li");
      const link = el("a", { class: "sev-" + s.severity, href: s.admin_url, "data-severity": s.severity, "data-count": s.count }, s.severity + " " + s.count);
      li.append(link);
      list.append(li);
    });
    const body = document.getElementById("notification-rows");
    body.replaceChildren();
    notifications.latest.forEach((n) => {
      const tr = el("tr");
      tr.append(el("td", {}, n.severity), el("td", {}, n.notification_type));
      const title = el("td");
      title.append(n.admin_url ? el("a", { href: n.admin_url }, n.title) : document.createTextNode(n.title));
      tr.append(title, el("td", { class: "num" }, n.occurrences));
      body.append(tr);
    });
  }

  function utc(iso) { return iso ? iso.replace("T", " ").slice(0, 16) : "—"; }

  function drawCycles(cycles) {
    const body = document.getElementById("cycle-rows");
    body.replaceChildren();
    cycles.forEach((c) => {
      const tr = el("tr", { "data-cycle": c.id, class: c.guard_tripped ? "guard-row" : null });
      const id = el("td");
      id.append(c.url ? el("a", { href: c.url }, c.id) : document.createTextNode(c.id));
      tr.append(id);
      [c.started_at.replace("T", " ").slice(0, 19), c.trigger, c.status, c.guard_tripped ? "tripped" : "—",
       c.detected, c.healed, c.failed, c.skipped, c.escalated, c.duration_ms === null ? "" : Math.round(c.duration_ms)]
        .forEach((v, i) => tr.append(el("td", i >= 4 ? { class: "num" } : i === 3 ? { class: "guard-cell" } : {}, v)));
      body.append(tr);
    });
  }

  function drawGuard(guard) {
    const banner = document.getElementById("guard-banner");
    if (!banner) return;
    banner.hidden = !guard.tripped;
    banner.dataset.tripped = String(guard.tripped);
    if (!guard.tripped) { banner.replaceChildren(); return; }
    const paused = guard.paused.join(", ").replace(/, ([^,]*)$/, " and $1");
    const text = paused.charAt(0).toUpperCase() + paused.slice(1) + " are paused since " + utc(guard.since) +
      " UTC, " + guard.held + " order" + (guard.held === 1 ? "" : "s") + " held. " + guard.stuck + " of " +
      guard.open_orders + " open orders were stuck in the last cycle: check the vendor gateway. Workflow retries continue.";
    banner.replaceChildren(el("strong", {}, "Blast-radius guard tripped. "), document.createTextNode(text + " "),
      el("a", { href: guard.cycle_url }, "cycle " + guard.cycle_id));
  }

  function rows(bodyId, items, cells, attrs, empty) {
    const body = document.getElementById(bodyId);
    if (!body) return;
    body.replaceChildren();
    if (!items.length && empty) {
      const columns = body.closest("table").querySelectorAll("thead th").length;
      body.append(el("tr", { class: "empty" }));
      body.lastChild.append(el("td", { colspan: columns, class: "muted" }, empty));
    }
    items.forEach((item) => {
      const tr = el("tr", attrs ? attrs(item) : {});
      cells(item).forEach(([value, cls, href]) => {
        const td = el("td", cls ? { class: cls } : {});
        td.append(href ? el("a", { href: href }, value) : document.createTextNode(value === null || value === undefined ? "" : String(value)));
        tr.append(td);
      });
      body.append(tr);
    });
  }

  function drawAtRisk(risk) {
    document.getElementById("at-risk-total").textContent = (risk.truncated ? "≥ " : "") + risk.total +
      (risk.total === 1 ? " order" : " orders");
    document.getElementById("at-risk-note").textContent = "Open orders past " + risk.share_percent +
      " % of their rule's threshold, not stuck yet: act before the healer has to.";
    rows("at-risk-status", risk.by_status, (r) => [[r.status], [r.count, "num"]]);
    rows("at-risk-vendor", risk.by_vendor, (r) => [[r.vendor], [r.count, "num"]]);
    rows("at-risk-rows", risk.orders, (o) => [[o.number, "", o.url], [o.status], [o.vendor],
      [o.elapsed_minutes + (o.vendor_time ? " (working)" : ""), "num"], [o.threshold_minutes, "num"], [o.minutes_left, "num"]],
      (o) => ({ "data-order": o.order_id }), "No order is close to its threshold.");
  }

  function drawVendors(vendors) {
    document.getElementById("vendors-note").textContent = vendors.open_circuits + " circuit(s) open · " +
      vendors.closed_now + " closed now (calendar) · " + vendors.total + " vendors";
    rows("vendor-rows", vendors.rows, (v) => [[v.name], [v.state_label, "circuit circuit-" + v.state.toLowerCase()],
      [utc(v.open_since)], [v.failures, "num"], [v.last_error], [v.calendar_open ? "open now" : "closed now"],
      [v.open_orders, "num"], [v.stuck_orders, "num"], [v.silenced, "num"]],
      (v) => ({ "data-vendor": v.id, "data-state": v.state, "data-calendar-open": String(v.calendar_open) }),
      "No vendor yet.");
  }

  function drawSilences(silences) {
    document.getElementById("silences-total").textContent = silences.total + " active";
    rows("silence-rows", silences.rows, (s) => [[s.id], [s.matchers + (s.recurring ? " (weekly window)" : "")],
      [utc(s.ends_at)], [s.owner], [s.comment], [s.holding, "num"]], (s) => ({ "data-silence": s.id, "data-holding": s.holding }),
      "No silence is active: every stuck order is healed and paged as usual.");
  }

  function draw(data) {
    drawKpis(data.kpis);
    drawOutcomes(data.outcomes);
    drawRecovery(data.recovery);
    if (data.stuck) drawStuck(data.stuck);
    if (data.notifications) drawNotifications(data.notifications);
    if (data.cycles) drawCycles(data.cycles);
    if (data.guard) drawGuard(data.guard);
    if (data.at_risk) drawAtRisk(data.at_risk);
    if (data.vendors) drawVendors(data.vendors);
    if (data.silences) drawSilences(data.silences);
    document.getElementById("updated-at").textContent = data.generated_at.replace("T", " ").slice(0, 19) + " UTC";
    root.dataset.generatedAt = data.generated_at;
  }

  function refresh() {
    fetch(root.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => {
        if (r.status === 401 || r.status === 403) { window.location.reload(); throw new Error("signed out"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(draw)
      .catch((err) => { root.dataset.refreshError = String(err); });
  }

  draw(JSON.parse(document.getElementById("dashboard-data").textContent));
  root.dataset.ready = "true";
  setInterval(refresh, Number(root.dataset.refresh || 5) * 1000);
})();
