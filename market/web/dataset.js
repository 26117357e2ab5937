// A dataset page a buyer can decide from: title, price and licence, the way to buy access,
// the data card, quality and its history, coverage map, columns with profiles, sample rows,
// example queries, publisher and signature status, checkpoint history, downloads.
"use strict";

(() => {
  const { $, el, api, table, fmt, showError } = App;
  const section = (id, title, ...children) => el("section", { id, class: "panel", "aria-labelledby": id + "-h" }, el("h3", { id: id + "-h" }, title), ...children);
  const dl = (pairs) => el("dl", {}, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "").flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const short = (hex, n = 12) => (hex ? String(hex).slice(0, n) + "…" : "—");

  App.showDataset = async function showDataset(dataset) {
    try {
      const l = await api("/api/listings/" + encodeURIComponent(dataset));
      const article = el("article", { id: "dataset", "aria-labelledby": "dataset-title", "data-dataset": l.dataset },
        el("p", {}, el("a", { href: "#/", id: "back" }, "← All datasets")),
        header(l),
        el("div", { class: "grid2" },
          section("data-card", "Data card", dataCard(l)),
          el("div", {}, section("coverage", "Coverage", App.coverageMap(l.coverage)), access(l), App.assetPanel ? App.assetPanel(l) : "")),
        section("quality", "Quality", quality(l)),
        section("columns", "Columns and their profiles", columns(l)),
        section("sample", "Sample rows (published rows, before licensing)", sample(l)),
        el("div", { class: "grid2" },
          section("examples", "Example queries", examples(l)),
          section("license", "Licence and price", license(l))),
        section("publisher", "Publisher and proofs", publisher(l)));
      $("dataset").replaceWith(article);
      document.title = l.title + " — RDA Marketplace";
      $("dataset-title").focus();
      window.scrollTo(0, 0);
    } catch (e) { showError(e.message); }
  };

  function header(l) {
    return el("header", { class: "dataset-head" },
      el("h2", { id: "dataset-title", tabindex: "-1" }, l.title),
      el("p", { class: "lede" }, l.description),
      el("p", { class: "meta" },
        el("span", { class: "badge" + (l.licensed ? " licensed" : "") }, l.licensed ? "licensed to you" : "not licensed"),
        el("span", { class: "badge", id: "price" }, l.price.label),
        el("span", { class: "badge" }, l.license),
        ` ${l.rows.toLocaleString("en")} rows · dataset ${l.dataset} · query it as `, el("code", {}, l.view)));
  }

  function access(l) {
    const box = el("section", { id: "access", class: "panel", "aria-labelledby": "access-h" });
    if (l.licensed) {
      box.append(el("h3", { id: "access-h" }, "Your licence"),
        el("p", {}, "You hold a licence: query it in the console or download it."),
        el("div", { class: "row", id: "downloads" },
          el("button", { onclick: () => App.openInConsole(`SELECT * FROM ${l.view} LIMIT 100`) }, "Query in the console"),
          el("button", { class: "secondary", id: "download-csv", onclick: () => downloadAll(l, "csv") }, "Download CSV"),
          el("button", { class: "secondary", id: "download-parquet", onclick: () => downloadAll(l, "parquet") }, "Download Parquet")),
        el("p", { class: "hint" }, "Downloads hold the published rows of the anchored checkpoint (up to the service's row limit); each file names its checkpoint."));
      return box;
    }
    const status = el("p", { id: "request-status", role: "status" });
    const pending = l.access_request && l.access_request.status === "pending";
    if (l.access_request) status.textContent = requestText(l.access_request);
    const message = el("textarea", { id: "request-message", rows: "3", placeholder: "What will you use the data for? (the seller reads this)" });
    const form = el("form", { id: "request-form", "aria-label": "Request access" },
      el("label", { for: "request-message" }, "Your message to the seller"), message,
      el("button", { type: "submit", id: "request-access" }, pending ? "Update your request" : `Request access — ${l.price.label}`));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const { request } = await api("/api/access-requests", { method: "POST", body: JSON.stringify({ dataset: l.dataset, message: message.value }) });
        status.textContent = requestText(request);
        showError("");
      } catch (err) { showError(err.message); }
    });
    box.append(el("h3", { id: "access-h" }, "Buy access"),
      el("p", {}, `Licence ${l.license}, ${l.price.label}. Send a request: the seller sees it with `, el("code", {}, "rda market requests"),
        " and grants it; this page then shows the data as licensed." + (l.asset ? " Or buy a licence on chain below." : "")),
      form, status);
    return box;
  }

  const requestText = (r) => `Request #${r.id} ${r.status}: sent ${r.requested_at.slice(0, 19).replace("T", " ")} UTC` +
    (r.status === "pending" ? " — the seller has not answered yet." : ".");

  async function downloadAll(l, format) {
    try {
      await App.download("/api/query", { method: "POST", body: JSON.stringify({ sql: `SELECT * FROM ${l.view}`, format }) }, `${l.view}.${format}`);
    } catch (e) { showError(e.message); }
  }

  function dataCard(l) {
    const c = l.data_card, privacy = c.privacy || {};
    const dp = privacy.differential_privacy;
    const transforms = Object.entries(privacy.transforms || {}).map(([f, t]) => `${f}: ${t}`);
    const privacyText = [
      transforms.length ? "Before publishing: " + transforms.join("; ") + "." : "No field needed anonymizing: every published field is public.",
      privacy.k_anonymity ? `k-anonymity with k=${privacy.k_anonymity.k} over ${privacy.k_anonymity.quasi_identifiers.join(", ")}.` : "",
      dp ? `Differential privacy: ε=${dp.epsilon}, δ=${dp.delta} per released count (${dp.mechanism}; ${dp.unit}).` : "",
    ].filter(Boolean).join(" ");
    const q = c.quarantine;
    const reasons = Object.entries(q.topics).flatMap(([topic, r]) => Object.entries(r).map(([why, n]) => `${why} ${n}`));
    return dl([
      ["What", c.what],
      ["Where", c.where],
      ["When", c.when],
      ["How collected", c.how_collected],
      ["Update cadence", c.cadence.text],
      ["Methodology", el("ul", {}, c.methodology.map((m) => el("li", {}, m)))],
      ["Privacy", el("span", { id: "privacy-treatment" }, privacyText)],
      ["Quarantined", el("span", { id: "quarantine-count" }, `${q.total} records` + (reasons.length ? ` (${reasons.join(", ")})` : "") + ". " + q.note)],
      ["Suppressed", el("span", { id: "suppressed-count" }, "Records in groups smaller than k are withheld (k-anonymity); how many is not published: a count per checkpoint would say someone had a rare session there and then.")],
      ["Known limits", el("ul", {}, c.known_limits.map((m) => el("li", {}, m)))],
    ]);
  }

  function quality(l) {
    const q = l.quality, r = l.quality_report;
    if (!q) return el("p", { class: "hint" }, "No quality report is attached to this checkpoint.");
    const comps = Object.entries(q.components || {}).map(([k, v]) => `${k} ${fmt(v)}`).join(" · ");
    const history = table(["tree size", "batch", "score", "expectations met", "signature"],
      l.checkpoints.map((h) => [h.tree_size, h.batch ?? "—", h.quality_score ?? "—",
        h.expectations === "pending" ? "pending" : h.expectations ? `${h.expectations.successful} of ${h.expectations.evaluated}` : "—",
        h.signature]), "Quality per anchored checkpoint");
    history.id = "quality-history";
    return el("div", {},
      el("p", {}, el("strong", { id: "quality-score" }, `Score ${q.score} / 100`), ` at the latest checkpoint — ${comps}`),
      history,
      r ? el("details", { id: "quality-report" }, el("summary", {}, `Validation report (Great Expectations) of the latest checkpoint: ${r.statistics.successful_expectations} of ${r.statistics.evaluated_expectations} expectations met`),
        el("p", { class: "hint" }, "Covers " + r.scope + "."),
        table(["expectation", "column", "met", "detail"], r.expectations.map((e) => [e.expectation, e.column ?? "(table)", e.success ? "yes" : "NO", e.detail])))
        : el("p", { class: "hint", id: "quality-report-pending" }, "The Great Expectations validation of the latest checkpoint is pending: it runs after the anchor, and its report appears here, attested by the publisher's key, when it is done."));
  }

  function columns(l) {
    const profiles = Object.fromEntries(l.profiles.map((p) => [p.name, p]));
    const describe = (p) => {
      if (!p) return "";
      if (p.masked) return "values hidden (pseudonyms)";
      if (p.top) return p.top.map((t) => `${t.value} (${t.rows})`).join(", ");
      if (p.min !== undefined) return `${fmt(p.min)} … ${fmt(p.max)}` + (p.mean !== undefined && p.mean !== null ? `, mean ${fmt(p.mean)}` : "");
      return "";
    };
    const range = (f) => (f.minimum !== null || f.maximum !== null) ? `${f.minimum ?? ""} … ${f.maximum ?? ""}` : "";
    const t = table(["field", "type", "unit", "valid range", "privacy", "nulls", "distinct", "profile", "description"],
      l.schema.fields.map((f) => {
        const p = profiles[f.name];
        return [el("code", {}, f.name), f.type, f.unit ?? "", range(f), f.privacy ?? "", p ? `${(p.null_fraction * 100).toFixed(1)}%` : "", p ? p.distinct : "", describe(p), f.description ?? ""];
      }));
    t.id = "profiles";
    return el("div", { class: "scroll", tabindex: "0" }, t);
  }

  function sample(l) {
    const s = l.sample;
    const t = table(s.columns, s.rows);
    return el("div", {}, el("div", { class: "scroll", tabindex: "0" }, t),
      s.masked.length ? el("p", { class: "hint" }, `Hidden before licensing: ${s.masked.join(", ")} (pseudonyms and truncated addresses).`) : "");
  }

  function examples(l) {
    return el("ul", { class: "examples" }, l.examples.map((x) => el("li", {},
      el("div", {}, x.title), el("pre", {}, x.sql),
      el("button", { class: "secondary", onclick: () => App.openInConsole(x.sql) }, "Open in console"))));
  }

  function license(l) {
    const t = l.license_terms;
    return el("div", {},
      el("p", { id: "price-detail" }, el("strong", {}, l.price.label), l.price.amount ? ` (${l.price.currency}, ${l.price.unit})` : ""),
      el("p", {}, el("strong", {}, t.name), t.id !== t.name ? ` (${t.id})` : ""),
      t.summary ? el("p", { id: "license-summary" }, t.summary) : "",
      t.url ? el("p", { class: "meta" }, "Legal code: ", el("span", { class: "mono" }, t.url)) : "",
      t.text ? el("details", { id: "license-text" }, el("summary", {}, "Full licence text from the seller"), el("pre", {}, t.text)) : "");
  }

  function publisher(l) {
    const p = l.publisher, cp = l.checkpoint, sig = p.signature || {};
    const history = table(["tree size", "root", "anchor tx", "block", "planned", "signature"],
      l.checkpoints.slice().reverse().map((h) => [h.tree_size, el("span", { class: "mono", title: h.root }, short(h.root, 16)),
        el("span", { class: "mono", title: h.anchor_tx }, short(h.anchor_tx, 18)), h.anchor_block, (h.planned_at || "").replace("T", " ").slice(0, 19), h.signature]),
      "Checkpoint history (newest first)");
    history.id = "checkpoint-history";
    return el("div", {},
      dl([
        ["Publisher key", el("span", { class: "mono" }, `${p.algorithm} ${p.key_id}`)],
        ["Signature", el("span", { id: "signature-status", class: "sig-" + sig.status }, `${sig.status === "valid" ? "✓ valid" : "✗ " + sig.status} — ${sig.detail}`)],
        ["Anchored checkpoint", el("span", { class: "mono" }, `tree size ${cp.tree_size}, root ${cp.root}`)],
        ["Anchor", el("span", { class: "mono", id: "anchor-tx" }, `tx ${cp.anchor_tx} in block ${cp.anchor_block} on chain ${cp.chain_id}, registry ${cp.contract}`)],
        ["Check it yourself", el("span", {}, "rda verify (auditor) checks rows → root → signed manifest → anchor; the console returns inclusion proofs you can verify in this page.")],
      ]),
      history);
  }
})();
