// Profilis dashboard: polls metrics.json and draws it. Plain JS, inline SVG, no dependencies.
// Every value from the server is inserted as text (textContent), never as markup: route
// names, queries and error types come from the application and must not become HTML.
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const body = document.body;
  const metricsUrl = body.dataset.metricsUrl;
  const refreshMs = Math.max(500, Number(body.dataset.refreshMs) || 2000);
  // A token given as ?token= in the address bar is sent as a header on every poll.
  const token = new URLSearchParams(window.location.search).get("token");
  const sortState = {};
  let paused = false;
  let timer = null;
  let last = null;

  // ------------------------------------------------------------------ formatting
  function fmtInt(v) { return v == null ? "—" : Math.round(v).toLocaleString("en-US"); }
  function fmtMs(v) {
    if (v == null) return "—";
    if (v < 1) return v.toFixed(3) + " ms";
    if (v < 10) return v.toFixed(2) + " ms";
    if (v < 1000) return v.toFixed(1) + " ms";
    return (v / 1000).toFixed(2) + " s";
  }
  function fmtRate(v) { return v == null ? "—" : (v < 10 ? v.toFixed(2) : v.toFixed(1)) + "/s"; }
  function fmtPct(v) {
    if (v == null) return "—";
    return v === 0 ? "0 %" : (v * 100).toFixed(v < 0.1 ? 2 : 1) + " %";
  }
  function fmtTime(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString("en-GB", { hour12: false });
  }
  function fmtDuration(seconds) {
    if (seconds < 90) return Math.round(seconds) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }
  function shorten(text, max) {
    return text.length <= max ? text : text.slice(0, max - 1) + "…";
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text != null) node.textContent = text;
    return node;
  }
  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text != null) node.textContent = text;
    return node;
  }
  function setText(id, text, bad) {
    const node = document.getElementById(id);
    node.textContent = text;
    node.classList.toggle("bad", Boolean(bad));
  }

  // ------------------------------------------------------------------ charts
  // Round numbers for an axis from 0 to about max.
  function niceTicks(max, count) {
    if (!(max > 0)) return [0, 1];
    const raw = max / count;
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
    const ticks = [];
    for (let v = 0; v <= max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(6)));
    return ticks;
  }

  function chartBox(svg) {
    const width = Math.max(200, svg.clientWidth || 400);
    const height = Math.max(120, svg.clientHeight || 190);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    return { width, height, left: 46, right: 10, top: 8, bottom: 22 };
  }

  function emptyChart(svg, box, message) {
    svg.appendChild(svgEl("text", {
      x: box.width / 2, y: box.height / 2, "text-anchor": "middle", class: "empty",
    }, message));
  }

  // series: [{name, cls, values: [number|null]}], times: [seconds], format: y tick label.
  function lineChart(figure, times, series, format) {
    const svg = figure.querySelector("svg");
    const box = chartBox(svg);
    const legend = figure.querySelector("[data-legend]");
    legend.replaceChildren(...series.map((s) => {
      const item = el("span", { class: "item" });
      item.append(el("span", { class: "swatch " + s.cls }), s.name);
      return item;
    }));
    const all = series.flatMap((s) => s.values).filter((v) => v != null);
    if (times.length < 2 || all.length === 0) {
      emptyChart(svg, box, "no requests in the window yet");
      return;
    }
    const ticks = niceTicks(Math.max(...all), 4);
    const top = ticks[ticks.length - 1];
    const plotW = box.width - box.left - box.right;
    const plotH = box.height - box.top - box.bottom;
    const t0 = times[0];
    const span = Math.max(1, times[times.length - 1] - t0);
    const x = (t) => box.left + ((t - t0) / span) * plotW;
    const y = (v) => box.top + plotH - (v / top) * plotH;
    for (const tick of ticks) {
      svg.appendChild(svgEl("line", { class: "grid", x1: box.left, x2: box.width - box.right, y1: y(tick), y2: y(tick) }));
      svg.appendChild(svgEl("text", { x: box.left - 4, y: y(tick) + 3, "text-anchor": "end" }, format(tick)));
    }
    // At most 4 intervals, and never two labels reading the same second.
    const labels = Math.max(1, Math.min(4, Math.floor(span)));
    let previous = null;
    for (let i = 0; i <= labels; i++) {
      const t = t0 + (span * i) / labels;
      const text = fmtTime(t);
      if (text === previous) continue;
      previous = text;
      const anchor = i === 0 ? "start" : i === labels ? "end" : "middle";
      svg.appendChild(svgEl("text", { x: x(t), y: box.height - 6, "text-anchor": anchor }, text));
    }
    svg.appendChild(svgEl("line", { class: "axis", x1: box.left, x2: box.width - box.right, y1: y(0), y2: y(0) }));
    for (const s of series) {
      // Gaps (no requests, so no percentile) break the line instead of dropping to zero.
      let d = "";
      let pen = "M";
      const dots = [];
      s.values.forEach((v, i) => {
        if (v == null) { pen = "M"; return; }
        d += `${pen}${x(times[i]).toFixed(1)},${y(v).toFixed(1)} `;
        pen = "L";
        // A point with no neighbour draws no line: mark it so it is not invisible.
        if (s.values[i - 1] == null && s.values[i + 1] == null) dots.push([x(times[i]), y(v)]);
      });
      if (s.area && d) {
        const area = `${d}L${x(times[times.length - 1]).toFixed(1)},${y(0)} L${x(t0).toFixed(1)},${y(0)} Z`;
        svg.appendChild(svgEl("path", { class: "area " + s.cls, d: area }));
      }
      const path = svgEl("path", { class: "series " + s.cls, d: d.trim(), "data-series": s.name });
      path.appendChild(svgEl("title", {}, s.name));
      svg.appendChild(path);
      for (const [cx, cy] of dots) {
        svg.appendChild(svgEl("circle", { class: "dot " + s.cls, cx: cx.toFixed(1), cy: cy.toFixed(1), r: 2.5 }));
      }
    }
  }

  function routesChart(figure, routes) {
    const svg = figure.querySelector("svg");
    const box = chartBox(svg);
    const top = routes.slice(0, 7);
    if (top.length === 0) {
      emptyChart(svg, box, "no routes yet");
      return;
    }
    const labelW = Math.min(190, box.width * 0.45);
    const rowH = Math.min(26, (box.height - 4) / top.length);
    const max = Math.max(...top.map((r) => r.count), 1);
    const barW = box.width - labelW - 60;
    top.forEach((r, i) => {
      const yTop = 2 + i * rowH;
      const name = r.overflow ? "(other routes)" : `${r.method} ${r.route}`;
      const g = svgEl("g", { class: "route-bar", "data-route": r.route, "data-method": r.method });
      g.appendChild(svgEl("title", {}, `${name}: ${r.count} requests, ${r.errors} errors`));
      g.appendChild(svgEl("text", { class: "bar-label", x: labelW - 6, y: yTop + rowH / 2 + 3, "text-anchor": "end" }, shorten(name, 30)));
      const w = Math.max(1, (r.count / max) * barW);
      const errW = r.count ? (r.errors / r.count) * w : 0;
      const h = Math.max(4, rowH - 8);
      g.appendChild(svgEl("rect", { class: "bar" + (r.overflow ? " overflow" : ""), x: labelW, y: yTop + 4, width: w.toFixed(1), height: h }));
      if (errW > 0) g.appendChild(svgEl("rect", { class: "bar errors", x: labelW + w - errW, y: yTop + 4, width: errW.toFixed(1), height: h }));
      g.appendChild(svgEl("text", { x: labelW + w + 4, y: yTop + rowH / 2 + 3 }, fmtInt(r.count)));
      svg.appendChild(g);
    });
  }

  // ------------------------------------------------------------------ tables
  // columns: [{key, label, kind: "text"|"num", format, cls}]; sorted by sortState[table.id].
  function renderTable(table, columns, rows, defaultSort, rowClass) {
    const state = sortState[table.id] || (sortState[table.id] = { ...defaultSort });
    const sorted = rows.slice();
    if (table.classList.contains("sortable")) {
      const col = columns.find((c) => c.key === state.key) || columns[0];
      const sign = state.dir === "ascending" ? 1 : -1;
      sorted.sort((a, b) => {
        const va = col.value ? col.value(a) : a[col.key];
        const vb = col.value ? col.value(b) : b[col.key];
        if (va == null && vb == null) return 0;
        if (va == null) return 1;
        if (vb == null) return -1;
        return (col.kind === "text" ? String(va).localeCompare(String(vb)) : va - vb) * sign;
      });
    }
    const head = el("thead");
    const headRow = el("tr");
    for (const c of columns) {
      const th = el("th", { class: c.kind === "text" ? "text" : "", "data-key": c.key, scope: "col" }, c.label);
      if (table.classList.contains("sortable")) {
        th.setAttribute("aria-sort", state.key === c.key ? state.dir : "none");
        th.addEventListener("click", () => {
          const dir = state.key === c.key && state.dir === "descending" ? "ascending" : "descending";
          sortState[table.id] = { key: c.key, dir: c.kind === "text" && state.key !== c.key ? "ascending" : dir };
          renderTable(table, columns, rows, defaultSort, rowClass);
        });
      }
      headRow.appendChild(th);
    }
    head.appendChild(headRow);
    const tbody = el("tbody");
    if (sorted.length === 0) {
      const tr = el("tr");
      tr.appendChild(el("td", { class: "empty", colspan: String(columns.length) }, "nothing in the window"));
      tbody.appendChild(tr);
    }
    for (const row of sorted) {
      const tr = el("tr", rowClass ? { class: rowClass(row) } : {});
      for (const c of columns) {
        const raw = c.value ? c.value(row) : row[c.key];
        const td = el("td", { class: [c.kind === "text" ? "text" : "", c.cls || ""].join(" ").trim() }, c.format ? c.format(raw, row) : raw);
        if (c.bad && c.bad(raw, row)) td.classList.add("bad");
        if (c.kind === "text") td.title = String(raw);
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
    table.replaceChildren(head, tbody);
  }

  const statCols = [
    { key: "count", label: "Count", format: fmtInt },
    { key: "rate_per_s", label: "Rate", format: fmtRate },
    { key: "error_rate", label: "Errors", format: fmtPct, bad: (v) => v > 0 },
    { key: "p50_ms", label: "p50", format: fmtMs },
    { key: "p95_ms", label: "p95", format: fmtMs },
    { key: "p99_ms", label: "p99", format: fmtMs },
    { key: "max_ms", label: "Max", format: fmtMs },
  ];
  const overflowRow = (row) => (row.overflow ? "overflow" : "");

  function renderTables(data) {
    renderTable(document.getElementById("routes-table"), [
      { key: "method", label: "Method", kind: "text" },
      { key: "route", label: "Route", kind: "text", cls: "name" },
      ...statCols,
      { key: "total_ms", label: "Total time", format: fmtMs },
    ], data.routes, { key: "count", dir: "descending" }, overflowRow);
    renderTable(document.getElementById("functions-table"), [
      { key: "fn", label: "Function", kind: "text", cls: "name" },
      { key: "count", label: "Calls", format: fmtInt },
      { key: "error_rate", label: "Errors", format: fmtPct, bad: (v) => v > 0 },
      { key: "p50_ms", label: "p50", format: fmtMs },
      { key: "p95_ms", label: "p95", format: fmtMs },
      { key: "total_ms", label: "Total", format: fmtMs },
    ], data.functions, { key: "total_ms", dir: "descending" }, overflowRow);
    renderTable(document.getElementById("db-vendors-table"), [
      { key: "db_vendor", label: "Vendor", kind: "text" },
      { key: "count", label: "Queries", format: fmtInt },
      { key: "error_rate", label: "Errors", format: fmtPct, bad: (v) => v > 0 },
      { key: "p50_ms", label: "p50", format: fmtMs },
      { key: "p95_ms", label: "p95", format: fmtMs },
      { key: "total_ms", label: "Total", format: fmtMs },
    ], data.db.vendors, { key: "count", dir: "descending" }, overflowRow);
    renderTable(document.getElementById("db-queries-table"), [
      { key: "query", label: "Query", kind: "text", cls: "name query" },
      { key: "count", label: "Count", format: fmtInt },
      { key: "p95_ms", label: "p95", format: fmtMs },
      { key: "total_ms", label: "Total", format: fmtMs },
    ], data.db.queries, { key: "total_ms", dir: "descending" }, overflowRow);
    renderTable(document.getElementById("error-types-table"), [
      { key: "error", label: "Exception type", kind: "text", cls: "name" },
      { key: "count", label: "Count", format: fmtInt },
    ], data.errors.by_type, { key: "count", dir: "descending" });
    renderTable(document.getElementById("recent-errors-table"), [
      { key: "ts", label: "Time", kind: "text", format: fmtTime },
      { key: "error", label: "Exception", kind: "text", cls: "name" },
      { key: "name", label: "Where", kind: "text", cls: "name" },
      { key: "status", label: "Status", format: (v) => (v == null ? "" : String(v)) },
      { key: "dur_ms", label: "Took", format: fmtMs },
    ], data.errors.recent, null);
  }

  // ------------------------------------------------------------------ health
  function facts(pairs) {
    const dl = el("dl", { class: "facts" });
    for (const [k, v] of pairs) dl.append(el("dt", {}, k), el("dd", {}, v));
    return dl;
  }

  function scrollBox(table) {
    const box = el("div", { class: "scroll" });
    box.appendChild(table);
    return box;
  }

  function renderCollector(c) {
    const box = document.getElementById("collector");
    if (c == null) {
      box.replaceChildren(el("p", { class: "note" }, "No collector attached (StatsStore(collector=...) or stats.attach(collector))."));
      return;
    }
    if (c.error) {
      box.replaceChildren(el("p", { class: "note" }, c.error));
      return;
    }
    const nodes = [];
    const fill = c.queue_capacity ? c.queue_depth / c.queue_capacity : 0;
    nodes.push(el("div", { class: "note" }, `queue ${fmtInt(c.queue_depth)} of ${fmtInt(c.queue_capacity)}`));
    const meter = el("div", { class: "meter" + (fill > 0.8 ? " bad" : fill > 0.5 ? " warn" : "") });
    const bar = el("span");
    bar.style.width = Math.min(100, fill * 100).toFixed(1) + "%";
    meter.appendChild(bar);
    nodes.push(meter);
    const dropped = Object.entries(c.dropped || {}).map(([k, v]) => `${k} ${fmtInt(v)}`).join(", ");
    const pairs = [
      ["Enqueued", fmtInt(c.enqueued)],
      ["Exported", fmtInt(c.exported)],
      ["Dropped", `${fmtInt(c.dropped_total)}${dropped ? " (" + dropped + ")" : ""}`],
      ["Export errors", fmtInt(c.export_errors)],
    ];
    if (c.filtered != null) pairs.push(["Filtered", fmtInt(c.filtered)]);
    if (c.in_flight != null) pairs.push(["In flight", fmtInt(c.in_flight)]);
    if (c.workers != null) pairs.push(["Workers", fmtInt(Array.isArray(c.workers) ? c.workers.length : c.workers)]);
    nodes.push(facts(pairs));
    if (Array.isArray(c.sinks) && c.sinks.length) {
      const table = el("table", { id: "sinks-table" });
      nodes.push(el("h3", {}, "Sinks"), scrollBox(table));
      renderTable(table, [
        { key: "name", label: "Sink", kind: "text", cls: "name" },
        { key: "delivered", label: "Delivered", format: fmtInt },
        { key: "errors", label: "Errors", format: fmtInt, bad: (v) => v > 0 },
        { key: "pending", label: "Pending", format: fmtInt },
        { key: "backing_off", label: "State", kind: "text", format: (v) => (v ? "backing off" : "ok") },
      ], c.sinks, null);
    }
    // The sidecar lists its agent processes: one row each, with whatever fields it sends.
    if (Array.isArray(c.workers) && c.workers.length && typeof c.workers[0] === "object") {
      const table = el("table", { id: "workers-table", class: "sortable" });
      nodes.push(el("h3", {}, "Workers"), scrollBox(table));
      const keys = Object.keys(c.workers[0]);
      // Names (worker label, service) share what the numbers leave; a pid is not cut.
      renderTable(table, keys.map((key) => (
        typeof c.workers[0][key] === "number" && key !== "pid"
          ? { key, label: key.replace(/_/g, " "), format: fmtInt }
          : { key, label: key.replace(/_/g, " "), kind: "text", cls: key === "pid" ? "" : "name" }
      )), c.workers, { key: keys[0], dir: "ascending" });
    }
    box.replaceChildren(...nodes);
  }

  function renderStore(data) {
    const s = data.store;
    const over = Object.entries(s.overflowed).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${fmtInt(v)}`);
    document.getElementById("store").replaceChildren(facts([
      ["Events seen", fmtInt(s.events)],
      ["Ignored / late", `${fmtInt(s.ignored)} / ${fmtInt(s.late)}`],
      ["Over the caps", over.length ? over.join(", ") : "none"],
      ["Percentiles", `±${(data.histogram.relative_error * 100).toFixed(1)} % (log buckets)`],
    ]));
  }

  // ------------------------------------------------------------------ page
  function render(data) {
    last = data;
    const http = data.totals.http;
    setText("window-label", `last ${fmtDuration(data.window.covered_seconds)} of ${fmtDuration(data.window.seconds)}`);
    setText("kpi-requests", fmtInt(http.count));
    setText("kpi-rate", fmtRate(http.rate_per_s));
    setText("kpi-errors", fmtPct(http.error_rate), http.error_rate > 0);
    setText("kpi-p50", fmtMs(http.p50_ms));
    setText("kpi-p95", fmtMs(http.p95_ms));
    setText("kpi-p99", fmtMs(http.p99_ms));
    const c = data.collector;
    const ok = c && !c.error;
    setText("kpi-queue", ok ? `${fmtInt(c.queue_depth)} / ${fmtInt(c.queue_capacity)}` : "—");
    setText("kpi-dropped", ok ? fmtInt(c.dropped_total) : "—", ok && c.dropped_total > 0);

    const points = data.series.points;
    const times = points.map((p) => p.t);
    lineChart(document.getElementById("chart-rate"), times, [
      { name: "requests/s", cls: "rate", area: true, values: points.map((p) => p.rate_per_s) },
      { name: "errors/s", cls: "errors", values: points.map((p) => (p.requests ? p.rate_per_s * (p.errors / p.requests) : 0)) },
    ], (v) => String(v));
    lineChart(document.getElementById("chart-latency"), times, [
      { name: "p50", cls: "p50", values: points.map((p) => p.p50_ms) },
      { name: "p95", cls: "p95", values: points.map((p) => p.p95_ms) },
      { name: "p99", cls: "p99", values: points.map((p) => p.p99_ms) },
    ], (v) => (v >= 1000 ? v / 1000 + "s" : v + "ms"));
    routesChart(document.getElementById("chart-routes"), data.routes);
    renderTables(data);
    renderCollector(data.collector);
    renderStore(data);
    body.dataset.state = "ready";
    body.dataset.generatedAt = String(data.generated_at);
  }

  function showProblem(message) {
    const banner = document.getElementById("banner");
    banner.hidden = message == null;
    banner.textContent = message || "";
  }

  async function poll() {
    timer = null;
    const status = document.getElementById("status");
    try {
      const headers = { Accept: "application/json" };
      if (token) headers["X-Profilis-Token"] = token;
      const response = await fetch(metricsUrl, { headers, cache: "no-store", credentials: "same-origin" });
      if (response.status === 401) {
        throw new Error("metrics.json refused the request (401): open this page with ?token=<your token>");
      }
      if (!response.ok) throw new Error(`metrics.json answered HTTP ${response.status}`);
      render(await response.json());
      showProblem(null);
      status.className = "status live";
      status.textContent = `updated ${fmtTime(last.generated_at)}`;
    } catch (error) {
      showProblem(String(error.message || error));
      status.className = "status stale";
      status.textContent = last ? `stale since ${fmtTime(last.generated_at)}` : "no data";
      body.dataset.state = last ? "stale" : "error";
    }
    if (!paused) timer = setTimeout(poll, refreshMs);
  }

  document.getElementById("pause").addEventListener("click", (event) => {
    paused = !paused;
    event.currentTarget.setAttribute("aria-pressed", String(paused));
    event.currentTarget.textContent = paused ? "Resume" : "Pause";
    if (paused && timer) { clearTimeout(timer); timer = null; }
    if (!paused && !timer) poll();
  });
  // Charts are drawn at the size they are shown: redraw when the window is resized.
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (last) render(last); }, 150);
  });
  poll();
})();
