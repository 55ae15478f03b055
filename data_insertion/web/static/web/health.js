// The run list's health panel: every database and the shared cache, asked again every few
// seconds (the same JSON as GET /api/health, with the dashboard's session).
(function () {
  "use strict";
  const panel = document.getElementById("health");
  if (!panel) return;
  const every = Number(panel.dataset.everyMs) || 5000;

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function size(bytes) {
    if (bytes === null) return "-";
    const units = ["B", "KB", "MB", "GB"];
    let value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return unit ? `${value.toFixed(1)} ${units[unit]}` : `${value} B`;
  }

  function cacheLine(cache) {
    if (!cache.configured) return "Cache: none (DS_CACHE_URL is unset).";
    if (!cache.reachable) return `Cache: ${cache.location} UNREACHABLE: ${cache.error}`;
    const ratio = cache.hit_ratio === null ? "-" : `${(cache.hit_ratio * 100).toFixed(1)} %`;
    return `Cache: ${cache.location} reachable, PING ${cache.latency_ms.toFixed(2)} ms, ` +
      `hit ratio ${ratio} (${cache.hits.toLocaleString("en")} hits, ` +
      `${cache.misses.toLocaleString("en")} misses since Redis started), breaker ${cache.breaker}.`;
  }

  function show(report) {
    const verdict = panel.querySelector(".health-verdict");
    verdict.textContent = report.healthy ? "healthy" : "UNHEALTHY";
    verdict.className = `health-verdict ${report.healthy ? "pass" : "fail"}`;
    panel.querySelector(".health-checked").textContent =
      `checked ${new Date().toLocaleTimeString()}`;
    const rows = report.databases.map((database) => {
      const tr = document.createElement("tr");
      tr.dataset.alias = database.alias;
      if (!database.reachable) tr.className = "failed";
      const tables = Object.entries(database.tables)
        .map(([table, rows]) => `${table} ${rows.toLocaleString("en")}`).join(", ");
      tr.append(
        cell(database.alias),
        cell(database.engine),
        cell(database.reachable ? "yes" : "NO"),
        cell(database.latency_ms === null ? "-" : database.latency_ms.toFixed(2), "n"),
        cell(size(database.size_bytes), "n"),
        cell(database.breaker),
        cell(database.reachable ? tables : database.error),
        cell(database.location),
      );
      return tr;
    });
    panel.querySelector("tbody").replaceChildren(...rows);
    panel.querySelector(".health-cache").textContent = cacheLine(report.cache);
  }

  async function refresh() {
    try {
      const response = await fetch(panel.dataset.url, { headers: { Accept: "application/json" } });
      show(await response.json()); // 503 still carries the report
    } catch (error) {
      panel.querySelector(".health-verdict").textContent = `not checked (${error})`;
    } finally {
      setTimeout(refresh, every);
    }
  }

  refresh();
})();
