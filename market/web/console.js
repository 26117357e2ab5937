// The SQL console: a schema browser of the buyer's licensed views beside the editor, results
// as a table and a chart, downloads as CSV or Parquet, and proofs handed to the proof tab.
"use strict";

(() => {
  const { $, el, api, table, showError } = App;
  let lastResult = null;

  function insertAtCursor(text) {
    const area = $("sql"), start = area.selectionStart, end = area.selectionEnd;
    area.value = area.value.slice(0, start) + text + area.value.slice(end);
    area.focus();
    area.selectionStart = area.selectionEnd = start + text.length;
  }

  function renderSchemaBrowser() {
    const mine = App.state.listings.filter((l) => l.licensed);
    const items = mine.map((l) => el("details", { class: "schema-view", open: mine.length <= 2 },
      el("summary", {}, el("code", {}, l.view), " ", el("span", { class: "meta" }, `${l.rows.toLocaleString("en")} rows`)),
      el("ul", {}, el("li", {}, el("button", { class: "link", onclick: () => insertAtCursor(l.view) }, "insert view name")),
        l.schema.fields.map((f) => el("li", {},
          el("button", { class: "link", title: f.description || "", onclick: () => insertAtCursor(f.name) }, f.name),
          el("span", { class: "meta" }, ` ${f.type}${f.unit ? ", " + f.unit : ""}`))))));
    $("schema-browser").replaceChildren(el("h3", {}, "Your datasets"),
      ...(items.length ? items : [el("p", { class: "hint" }, "No licensed datasets yet: request access from a dataset's page.")]));
  }

  App.openInConsole = (sql) => {
    $("sql").value = sql;
    App.switchTab("console");
    $("sql").focus();
  };

  function body(format) {
    return JSON.stringify({ sql: $("sql").value, format, proofs: format === "json" && $("with-proofs").checked });
  }

  async function runQuery() {
    $("query-status").textContent = "running…";
    $("query-checkpoints").textContent = "";
    $("query-result").replaceChildren();
    $("check-proofs").hidden = true;
    $("chart-panel").hidden = true;
    try {
      const result = await api("/api/query", { method: "POST", body: body("json") });
      showError("");
      lastResult = result;
      App.state.bundles = result.proofs || null;
      $("check-proofs").hidden = !App.state.bundles;
      $("query-status").textContent = `${result.row_count} rows` + (App.state.bundles ? `, ${App.state.bundles.length} proof bundles` : "");
      $("query-checkpoints").textContent = "Computed on " + result.checkpoints.map((c) =>
        `${c.dataset} at tree size ${c.tree_size}, root ${c.root.slice(0, 16)}…, anchor tx ${c.anchor_tx}`).join("; ");
      const names = result.columns.map((c) => c.name);
      $("query-result").replaceChildren(table(names, result.rows.map((r) => names.map((n) => r[n]))));
      setUpChart(result);
    } catch (e) {
      $("query-status").textContent = "";
      showError(e.message);
    }
  }

  function setUpChart(result) {
    const numeric = App.numericColumns(result);
    if (!numeric.length || !result.rows.length) return;
    const defaults = App.chartDefaults(result);
    const options = (select, names, chosen) => select.replaceChildren(...names.map((n) => el("option", { value: n, selected: n === chosen }, n)));
    options($("chart-x"), result.columns.map((c) => c.name), defaults.x);
    options($("chart-y"), numeric, defaults.y ?? numeric[0]);
    $("chart-kind").value = defaults.kind;
    $("chart-panel").hidden = false;
    drawChart();
  }

  function drawChart() {
    if (lastResult) App.drawChart($("chart"), lastResult, $("chart-x").value, $("chart-y").value, $("chart-kind").value);
  }

  async function downloadResult(format) {
    try {
      await App.download("/api/query", { method: "POST", body: body(format) }, "result." + format);
      showError("");
    } catch (e) { showError(e.message); }
  }

  App.onBoot(() => {
    $("run").addEventListener("click", runQuery);
    $("sql").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runQuery(); } });
    $("download-result-csv").addEventListener("click", () => downloadResult("csv"));
    $("download-result-parquet").addEventListener("click", () => downloadResult("parquet"));
    for (const id of ["chart-x", "chart-y", "chart-kind"]) $(id).addEventListener("change", drawChart);
    document.addEventListener("rda:signed-in", renderSchemaBrowser);
  });
})();
