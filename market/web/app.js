// The marketplace page: sign in with an API key, browse listings, run SQL, verify proofs.
// Every value from the server is inserted as text, never as HTML.
"use strict";

const state = { key: sessionStorage.getItem("rda-key") || "", listings: [] };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: "Bearer " + state.key } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.code + ": " + body.error.message : response.statusText);
  return body;
}

async function signIn(key) {
  state.key = key;
  try {
    const me = await api("/api/me");
    sessionStorage.setItem("rda-key", key);
    $("whoami").textContent = "Signed in as " + me.buyer;
    showError("");
    await loadListings();
  } catch (e) {
    $("whoami").textContent = "";
    showError(e.message);
  }
}

async function loadListings() {
  state.listings = (await api("/api/listings")).listings;
  $("catalog-hint").hidden = true;
  renderListings();
}

function matches(listing, text, filter) {
  if (filter === "licensed" && !listing.licensed) return false;
  if (filter === "unlicensed" && listing.licensed) return false;
  if (!text) return true;
  const haystack = [listing.dataset, listing.title, listing.description, listing.license,
    ...listing.schema.fields.flatMap((f) => [f.name, f.unit || "", f.description || ""])].join(" ").toLowerCase();
  return haystack.includes(text.toLowerCase());
}

function renderListings() {
  const text = $("search").value.trim(), filter = $("filter").value;
  const cards = state.listings.filter((l) => matches(l, text, filter)).map((l) => {
    const card = el("div", { class: "card", "data-dataset": l.dataset },
      el("h3", {}, l.dataset),
      el("div", {}, l.title),
      el("div", { class: "meta" },
        el("span", { class: "badge" + (l.licensed ? " licensed" : "") }, l.licensed ? "licensed" : "not licensed"),
        el("span", { class: "badge" }, l.license),
        el("span", { class: "badge" }, "$" + Number(l.price_usd).toFixed(2)),
        `${l.rows.toLocaleString("en")} rows · ${l.coverage.nodes ?? "?"} nodes · ${l.coverage.h3_cells.length} H3 cells`));
    card.addEventListener("click", () => showDataset(l.dataset));
    return card;
  });
  $("listings").replaceChildren(...(cards.length ? cards : [el("p", { class: "hint" }, "No dataset matches.")]));
}

function table(columns, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((v) => el("td", {}, v === null ? "null" : String(v)))))));
}

function coverageMap(cells) {
  const ns = "http://www.w3.org/2000/svg", w = 420, h = 240, pad = 20;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "map"); svg.setAttribute("width", w); svg.setAttribute("height", h);
  svg.setAttribute("role", "img"); svg.setAttribute("aria-label", "coverage: H3 cell centers");
  if (!cells.length) return svg;
  const lats = cells.map((c) => c.center[0]), lons = cells.map((c) => c.center[1]);
  const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
  const sx = (lon) => pad + (maxLon === minLon ? 0.5 : (lon - minLon) / (maxLon - minLon)) * (w - 2 * pad);
  const sy = (lat) => h - pad - (maxLat === minLat ? 0.5 : (lat - minLat) / (maxLat - minLat)) * (h - 2 * pad);
  const most = Math.max(...cells.map((c) => c.rows));
  for (const c of cells) {
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("cx", sx(c.center[1])); dot.setAttribute("cy", sy(c.center[0]));
    dot.setAttribute("r", 4 + 10 * Math.sqrt(c.rows / most)); dot.setAttribute("fill", "#0b6bcb"); dot.setAttribute("fill-opacity", "0.55");
    const title = document.createElementNS(ns, "title"); title.textContent = `${c.cell}: ${c.rows} rows`;
    dot.append(title); svg.append(dot);
  }
  return svg;
}

async function showDataset(dataset) {
  try {
    const l = await api("/api/listings/" + encodeURIComponent(dataset));
    const cp = l.checkpoint, cov = l.coverage;
    const quality = l.quality ? qualitySection(l.quality, l.quality_report)
      : el("p", { class: "hint" }, "No quality report is attached to this checkpoint.");
    const article = el("article", { id: "dataset" },
      el("h2", {}, l.dataset + " — " + l.title),
      el("p", {}, l.description),
      el("p", { class: "meta" }, `License ${l.license} · $${Number(l.price_usd).toFixed(2)} · ${l.rows.toLocaleString("en")} rows · query it as `, el("code", {}, l.view)),
      el("div", { class: "grid2" },
        el("div", {}, el("h3", {}, "Anchored checkpoint"),
          table(["", ""], [["tree size", cp.tree_size], ["root", cp.root], ["anchor tx", cp.anchor_tx], ["block", cp.anchor_block],
            ["chain id", cp.chain_id], ["contract", cp.contract], ["manifest sha256", cp.manifest_sha256]])),
        el("div", {}, el("h3", {}, "Coverage"),
          el("p", { class: "meta" }, `${cov.time_start ?? "?"} → ${cov.time_end ?? "?"} · ${cov.nodes ?? "?"} nodes · ${cov.h3_cells.length} H3 cells (res ${cov.h3_resolution})`),
          coverageMap(cov.h3_cells))),
      el("h3", {}, "Quality"), quality,
      el("h3", {}, "Schema"),
      table(["field", "type", "unit", "range", "privacy", "description"], l.schema.fields.map((f) => [
        f.name, f.type, f.unit ?? "", (f.minimum ?? "") + (f.minimum !== null || f.maximum !== null ? " … " : "") + (f.maximum ?? ""),
        f.privacy ?? "", f.description ?? ""])),
      el("h3", {}, "Sample rows"), el("div", { id: "sample", class: "scroll" },
        l.licensed ? "loading…" : el("p", { class: "hint" }, "License this dataset to see sample rows and query it.")));
    $("dataset").replaceWith(article);
    article.scrollIntoView();
    if (l.licensed) {
      const result = await api("/api/query", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sql: `SELECT * FROM ${l.view} LIMIT 5`, format: "json" }) });
      $("sample").replaceChildren(resultTable(result));
    }
  } catch (e) { showError(e.message); }
}

function qualitySection(q, report) {
  const rows = [["score", q.score]];
  if (q.expectations) rows.push(["expectations", `${q.expectations.successful} of ${q.expectations.evaluated} met`]);
  for (const [name, value] of Object.entries(q.components || {})) rows.push([name, value]);
  if (q.report_sha256) rows.push(["report sha256", q.report_sha256]);
  return el("div", { id: "quality" }, table(["", ""], rows),
    report ? el("details", {}, el("summary", {}, "Validation report (Great Expectations)"),
      el("pre", {}, JSON.stringify(report, null, 2))) : "");
}

function resultTable(result) {
  const names = result.columns.map((c) => c.name);
  return table(names, result.rows.map((r) => names.map((n) => r[n])));
}

async function runQuery() {
  $("query-status").textContent = "running…";
  $("query-checkpoints").textContent = "";
  $("query-result").replaceChildren();
  $("check-proofs").hidden = true;
  try {
    const proofs = $("with-proofs").checked;
    const result = await api("/api/query", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sql: $("sql").value, format: "json", proofs }) });
    showError("");
    state.bundles = result.proofs || null;
    $("check-proofs").hidden = !state.bundles;
    $("query-status").textContent = `${result.row_count} rows` + (state.bundles ? `, ${state.bundles.length} proof bundles` : "");
    $("query-checkpoints").textContent = "Computed on " + result.checkpoints.map((c) =>
      `${c.dataset} at tree size ${c.tree_size}, root ${c.root.slice(0, 16)}…, anchor tx ${c.anchor_tx}`).join("; ");
    $("query-result").replaceChildren(resultTable(result));
  } catch (e) {
    $("query-status").textContent = "";
    showError(e.message);
  }
}

async function verifyPasted() {
  // Checked against what the user pinned (RDATrust, verify.js) and the listings' anchored
  // checkpoints; the anchor itself is read from the user's RPC URL, never from this server.
  const listings = Object.fromEntries(state.listings.map((l) => [l.dataset, l.checkpoint]));
  const verdicts = await RDA.verifyText($("bundle").value, { ...RDATrust.load(), listings });
  const status = RDA.overall(verdicts);
  const box = $("verdict");
  box.className = "verdict " + (status === RDA.VERIFIED ? "ok" : status === RDA.INCOMPLETE ? "incomplete" : "bad");
  box.replaceChildren(el("div", { id: "verdict-line" }, status + (status === RDA.VERIFIED ? ` — ${verdicts.length} bundle(s)` : "")),
    ...verdicts.map((v) => el("div", { class: "mono" }, ({ VERIFIED: "✓ ", INCOMPLETE: "– " }[v.status] || "✗ ") + v.reason +
      (v.leaf_hash ? ` (leaf hash ${v.leaf_hash.slice(0, 16)}…)` : ""),
      el("ul", { class: "checks" }, (v.checks || []).map((c) => el("li", {}, `${c.ok === true ? "✓" : c.ok === false ? "✗" : "–"} ${c.check}: ${c.detail}`))))));
  box.hidden = false;
}

function switchTab(name) {
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== name;
}

document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => switchTab(b.dataset.tab)));
$("signin").addEventListener("submit", (e) => { e.preventDefault(); signIn($("api-key").value.trim()); });
$("search").addEventListener("input", renderListings);
$("filter").addEventListener("change", renderListings);
$("run").addEventListener("click", runQuery);
$("verify").addEventListener("click", verifyPasted);
$("pin-save").addEventListener("click", RDATrust.save);
$("pin-offered").addEventListener("click", async () => {
  try {
    const offered = await api("/api/publisher");
    $("pin-identity").value = offered.identity;
    $("pin-status").textContent = "Offered by this site, SHA-256 " + offered.sha256 + ": compare it with what the publisher announces, then Pin.";
  } catch (e) { showError(e.message); }
});
RDATrust.show();
$("check-proofs").addEventListener("click", () => {
  $("bundle").value = JSON.stringify({ bundles: state.bundles }, null, 2);
  switchTab("proof");
  verifyPasted();
});
if (state.key) signIn(state.key);
