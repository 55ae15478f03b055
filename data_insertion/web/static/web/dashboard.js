// A run's page: charts of throughput and latency percentiles per model, drawn with uPlot from
// the snapshots in the page, then fed live by the run's server-sent events until it ends.
(function () {
  "use strict";
  const root = document.getElementById("run");
  if (!root) return;
  const MODELS = ["user", "product", "order"];
  const COLORS = { user: "#1f77b4", product: "#e8710a", order: "#2ca02c" };
  const PERCENTILES = [["p50_ms", "p50", "#7fb3e0"], ["p95_ms", "p95", "#e8710a"], ["p99_ms", "p99", "#b3261e"]];

  const seconds = [];
  const rates = Object.fromEntries(MODELS.map((m) => [m, []]));
  const latencies = Object.fromEntries(
    MODELS.map((m) => [m, Object.fromEntries(PERCENTILES.map(([key]) => [key, []]))])
  );

  // A sharded model's rows/s in each of its databases: {model: {alias: [...]}}, aligned with
  // `seconds` (null before a database is first seen).
  const databaseRates = {};

  function addDatabases(model, progress) {
    const databases = (progress && progress.databases) || [];
    if (databases.length < 2 && !databaseRates[model]) return;
    const byAlias = (databaseRates[model] = databaseRates[model] || {});
    for (const database of databases) {
      if (!byAlias[database.database]) byAlias[database.database] = seconds.map(() => null);
    }
    const now = Object.fromEntries(databases.map((d) => [d.database, d.rows_per_second]));
    for (const [alias, values] of Object.entries(byAlias)) {
      values.length = seconds.length - 1;
      values.push(alias in now ? now[alias] : null);
    }
  }

  function add(snapshot) {
    seconds.push(snapshot.elapsed_seconds);
    const byModel = Object.fromEntries(snapshot.models.map((m) => [m.model, m]));
    for (const model of MODELS) {
      const progress = byModel[model];
      rates[model].push(progress ? progress.rows_per_second : null);
      addDatabases(model, progress);
      // An interval in which the model finished no record has no latency: a gap, not a 0.
      const idle = !progress || (progress.p50_ms === 0 && progress.p99_ms === 0);
      for (const [key] of PERCENTILES) latencies[model][key].push(idle ? null : progress[key]);
      const row = progress && document.querySelector(`tr[data-model="${model}"]`);
      if (row) {
        row.querySelector(".committed").textContent = progress.committed.toLocaleString("en");
        row.querySelector(".rejected").textContent = progress.rejected.toLocaleString("en");
        row.querySelector(".failed").textContent = progress.failed.toLocaleString("en");
      }
    }
  }

  function width(element) {
    return Math.max(320, element.clientWidth - 10);
  }

  // The run's fault windows ({label, start, end}, in seconds; end null: to the run's end),
  // shaded behind the throughput chart's lines.
  const faultWindows = JSON.parse(document.getElementById("fault-windows").textContent);
  function shadeFaults(u) {
    const { left, top, width, height } = u.bbox;
    const ctx = u.ctx;
    let drawn = 0;
    ctx.save();
    ctx.fillStyle = "rgba(179, 38, 30, 0.12)";
    ctx.font = `${Math.round(11 * devicePixelRatio)}px sans-serif`;
    ctx.textAlign = "left"; // the axes' drawing leaves it "right"
    ctx.textBaseline = "top";
    for (const window_ of faultWindows) {
      const from = Math.max(left, u.valToPos(window_.start, "x", true));
      const to = Math.min(
        left + width,
        window_.end === null ? left + width : u.valToPos(window_.end, "x", true)
      );
      if (!(to > from)) continue;
      ctx.fillRect(from, top, to - from, height);
      drawn += 1;
      ctx.fillStyle = "rgba(179, 38, 30, 0.8)";
      ctx.fillText(window_.label, from + 4 * devicePixelRatio, top + 4 * devicePixelRatio);
      ctx.fillStyle = "rgba(179, 38, 30, 0.12)";
    }
    ctx.restore();
    u.root.parentNode.dataset.faultBands = drawn;
  }

  function chart(element, title, unit, series, data, logarithmic, hooks) {
    return new uPlot(
      {
        title: title,
        hooks: hooks || {},
        width: width(element),
        height: 240,
        series: [{ label: "s" }, ...series],
        axes: [{ label: "seconds since start" }, { label: unit, size: 60 }],
        // Latency percentiles span decades (p50 0.1 ms, p99 30 ms): a log scale shows both.
        scales: { x: { time: false }, y: logarithmic ? { distr: 3 } : {} },
      },
      data,
      element
    );
  }

  JSON.parse(document.getElementById("snapshots").textContent).forEach(add);

  const throughputElement = document.getElementById("throughput-chart");
  const throughput = chart(
    throughputElement,
    "Rows committed per second",
    "rows/s",
    MODELS.map((m) => ({ label: m, stroke: COLORS[m], width: 2 })),
    [seconds, ...MODELS.map((m) => rates[m])],
    false,
    faultWindows.length ? { drawAxes: [shadeFaults] } : {}
  );
  const latencyCharts = MODELS.map((model) => {
    const element = document.getElementById(`latency-${model}`);
    return chart(
      element,
      `${model}: latency in each interval`,
      "ms (log)",
      PERCENTILES.map(([, label, color]) => ({ label: label, stroke: color, width: 1.5 })),
      [seconds, ...PERCENTILES.map(([key]) => latencies[model][key])],
      true
    );
  });

  // One chart per sharded model, a series per database, made when its databases are first seen.
  const databaseCharts = {};
  const DATABASE_COLORS = ["#1f77b4", "#e8710a", "#2ca02c", "#b3261e", "#7b4fa6", "#8c564b"];
  function databaseData(model) {
    return [seconds, ...Object.values(databaseRates[model])];
  }
  function drawDatabaseCharts() {
    for (const model of Object.keys(databaseRates)) {
      const aliases = Object.keys(databaseRates[model]);
      const existing = databaseCharts[model];
      if (existing && existing.series.length === aliases.length + 1) {
        existing.setData(databaseData(model));
        continue;
      }
      if (existing) {
        const old = existing.root.parentNode; // a database appeared: draw the chart again
        existing.destroy();
        old.remove();
      }
      const element = document.createElement("div");
      element.id = `databases-${model}`;
      element.className = "chart";
      document.getElementById("database-charts").appendChild(element);
      databaseCharts[model] = chart(
        element,
        `${model}: rows committed per second in each database`,
        "rows/s",
        aliases.map((alias, index) => ({
          label: alias,
          stroke: DATABASE_COLORS[index % DATABASE_COLORS.length],
          width: 2,
        })),
        databaseData(model),
        false
      );
    }
  }
  drawDatabaseCharts();

  function redraw() {
    throughput.setData([seconds, ...MODELS.map((m) => rates[m])]);
    drawDatabaseCharts();
    MODELS.forEach((model, index) =>
      latencyCharts[index].setData([seconds, ...PERCENTILES.map(([key]) => latencies[model][key])])
    );
    document.getElementById("snapshot-count").textContent = seconds.length;
  }

  if (root.dataset.finished === "true") return;
  const events = new EventSource(root.dataset.eventsUrl);
  const status = document.getElementById("run-status");
  events.addEventListener("snapshot", (event) => {
    add(JSON.parse(event.data));
    redraw();
    status.textContent = "running";
    status.className = "status running";
  });
  events.addEventListener("end", () => {
    events.close();
    // The finished run's page has its summary: outcomes, verdict, reasons, reports.
    window.location.reload();
  });
})();
