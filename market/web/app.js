// The marketplace page's shell: sign in with an API key, tabs, routes (#/datasets/<id>), the
// catalog list, and helpers the other scripts share through `App`. Every value from the server
// is inserted as text, never as HTML.
"use strict";

const App = (() => {
  const state = { key: sessionStorage.getItem("rda-key") || "", listings: [], me: null, bundles: null };
  const boots = [];
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
    return node;
  }

  function showError(message) {
    $("error").textContent = message || "";
    $("error").hidden = !message;
  }

  async function request(path, options = {}) {
    const headers = { ...(options.headers || {}), Authorization: "Bearer " + state.key };
    if (options.body) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { ...options, headers });
    if (!response.ok) {
      let message = response.statusText;
      try { const body = await response.json(); if (body.error) message = body.error.code + ": " + body.error.message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    return response;
  }
  const api = async (path, options) => (await request(path, options)).json();

  // A query result or export as a file the browser saves (the API needs the key in a header,
  // so a plain link cannot fetch it).
  async function download(path, options, filename) {
    const blob = await (await request(path, options)).blob();
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  // Numbers as a person reads them: no float noise (0.7666000000000001 → 0.7666).
  function fmt(value) {
    if (value === null || value === undefined) return "null";
    if (typeof value === "number" && !Number.isInteger(value)) return String(Number(value.toPrecision(10)));
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function table(columns, rows, caption) {
    return el("table", {}, caption ? el("caption", {}, caption) : "",
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((v) => el("td", {}, v instanceof Node ? v : fmt(v)))))));
  }

  function switchTab(name) {
    for (const b of document.querySelectorAll("nav [role=tab]")) {
      const on = b.dataset.tab === name;
      b.classList.toggle("active", on);
      b.setAttribute("aria-selected", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
    }
    for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== name;
  }

  async function signIn(key) {
    state.key = key;
    try {
      state.me = await api("/api/me");
      sessionStorage.setItem("rda-key", key);
      $("whoami").textContent = "Signed in as " + state.me.buyer + (state.me.wallet ? " (wallet)" : "");
      showError("");
      await loadListings();
      document.dispatchEvent(new CustomEvent("rda:signed-in"));
      route();
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
      const cov = l.coverage;
      return el("li", { class: "card", "data-dataset": l.dataset },
        el("h3", {}, el("a", { href: "#/datasets/" + encodeURIComponent(l.dataset) }, l.title)),
        el("div", { class: "meta" }, l.dataset + " · query as ", el("code", {}, l.view)),
        el("div", { class: "meta" },
          el("span", { class: "badge" + (l.licensed ? " licensed" : "") }, l.licensed ? "licensed" : "not licensed"),
          el("span", { class: "badge" }, l.license),
          el("span", { class: "badge price" }, l.price.label)),
        el("div", { class: "meta" }, `${l.rows.toLocaleString("en")} rows · ${cov.nodes ?? "no"} nodes · ` +
          (cov.h3_cells.length ? `${cov.h3_cells.length} H3 cells` : "no locations") +
          (cov.time_start ? ` · ${cov.time_start.slice(0, 10)} → ${cov.time_end.slice(0, 10)}` : "")));
    });
    $("listings").replaceChildren(...(cards.length ? cards : [el("li", { class: "hint" }, "No dataset matches.")]));
  }

  // #/datasets/<id> opens a dataset page at the top of the catalog tab; anything else, the list.
  function route() {
    const match = location.hash.match(/^#\/datasets\/(.+)$/);
    if (match && state.me) {
      switchTab("catalog");
      $("catalog-list").hidden = true;
      App.showDataset(decodeURIComponent(match[1]));
    } else {
      $("dataset").hidden = true;
      $("catalog-list").hidden = false;
    }
  }

  function boot() {
    const tabs = [...document.querySelectorAll("nav [role=tab]")];
    tabs.forEach((b, i) => {
      b.addEventListener("click", () => switchTab(b.dataset.tab));
      b.addEventListener("keydown", (e) => {  // arrow keys move between tabs, as in a tab list
        const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
        if (!step) return;
        const next = tabs[(i + step + tabs.length) % tabs.length];
        next.focus(); switchTab(next.dataset.tab);
      });
    });
    switchTab("catalog");
    $("signin").addEventListener("submit", (e) => { e.preventDefault(); signIn($("api-key").value.trim()); });
    $("search").addEventListener("input", renderListings);
    $("filter").addEventListener("change", renderListings);
    window.addEventListener("hashchange", route);
    for (const b of boots) b();
    if (state.key) signIn(state.key);
  }

  document.addEventListener("DOMContentLoaded", boot);
  return { state, $, el, api, request, download, fmt, table, showError, switchTab, route, loadListings, signIn,
    onBoot: (f) => boots.push(f) };
})();
