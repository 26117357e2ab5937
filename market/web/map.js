// The coverage map: H3 cells over Natural Earth land and country borders (served by the
// marketplace from an installed package, never fetched from elsewhere), with graticule axes in
// degrees, a legend of rows per cell, and buttons that zoom to each region the cells fall in.
"use strict";

(() => {
  const { el } = App;
  const NS = "http://www.w3.org/2000/svg";
  const W = 640, H = 340, PAD = { left: 44, right: 12, top: 10, bottom: 30 };
  let reference = null;

  const svgEl = (tag, attrs = {}) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  };
  const loadReference = () => reference ??= fetch("/static/reference/land.json").then((r) => r.json()).catch(() => ({ land: [], borders: [], source: null }));

  // Regions: cells whose centres are within ~5 degrees of each other, for the zoom buttons.
  function regions(cells) {
    const groups = [];
    for (const c of cells) {
      const [lat, lon] = c.center;
      const g = groups.find((r) => Math.abs(r.lat - lat) < 5 && Math.abs(r.lon - lon) < 5);
      if (g) { g.cells.push(c); } else groups.push({ lat, lon, cells: [c] });
    }
    return groups;
  }

  function bounds(cells, minSpan) {
    const lats = cells.flatMap((c) => c.boundary.map((p) => p[0])), lons = cells.flatMap((c) => c.boundary.map((p) => p[1]));
    let [s, n, w, e] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
    const padLat = Math.max((n - s) * 0.15, (minSpan - (n - s)) / 2, 0.05), padLon = Math.max((e - w) * 0.15, (minSpan - (e - w)) / 2, 0.05);
    [s, n, w, e] = [Math.max(s - padLat, -90), Math.min(n + padLat, 90), Math.max(w - padLon, -180), Math.min(e + padLon, 180)];
    // keep the plot's aspect: degrees of longitude shrink with cos(latitude)
    const k = Math.cos(((s + n) / 2) * Math.PI / 180), plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
    const wantLon = ((n - s) * plotW) / (plotH * k);
    if (wantLon > e - w) { const extra = (wantLon - (e - w)) / 2; w = Math.max(w - extra, -180); e = Math.min(e + extra, 180); }
    else { const wantLat = ((e - w) * plotH * k) / plotW, extra = (wantLat - (n - s)) / 2; s = Math.max(s - extra, -90); n = Math.min(n + extra, 90); }
    return { s, n, w, e };
  }

  function niceStep(span) {
    const raw = span / 5, power = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 5, 10].map((m) => m * power).find((v) => v >= raw) || raw;
  }

  function draw(svg, cells, view, layer) {
    const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
    const x = (lon) => PAD.left + ((lon - view.w) / (view.e - view.w)) * plotW;
    const y = (lat) => PAD.top + ((view.n - lat) / (view.n - view.s)) * plotH;
    const path = (points) => points.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join("");
    svg.replaceChildren();
    const defs = svgEl("defs"), clip = svgEl("clipPath", { id: "map-plot" });
    clip.append(svgEl("rect", { x: PAD.left, y: PAD.top, width: plotW, height: plotH }));
    defs.append(clip); svg.append(defs);
    svg.append(svgEl("rect", { class: "sea", x: PAD.left, y: PAD.top, width: plotW, height: plotH }));
    const ref = svgEl("g", { class: "reference", "clip-path": "url(#map-plot)" });
    const inView = (ring) => ring.some((p) => p[0] >= view.w - 5 && p[0] <= view.e + 5 && p[1] >= view.s - 5 && p[1] <= view.n + 5);
    for (const ring of layer.land) if (inView(ring)) ref.append(svgEl("path", { class: "land", d: path(ring) + "Z" }));
    for (const line of layer.borders) if (inView(line)) ref.append(svgEl("path", { class: "border", d: path(line) }));
    svg.append(ref);
    // graticule and axes, in degrees
    const axes = svgEl("g", { class: "axis" }), step = niceStep(Math.max(view.e - view.w, view.n - view.s));
    const label = (v, pos, neg) => `${+Math.abs(v).toFixed(4)}°${v === 0 ? "" : v > 0 ? pos : neg}`;
    for (let lon = Math.ceil(view.w / step) * step; lon <= view.e; lon += step) {
      axes.append(svgEl("line", { x1: x(lon), x2: x(lon), y1: PAD.top, y2: PAD.top + plotH }));
      const t = svgEl("text", { x: x(lon), y: H - 10, "text-anchor": "middle" }); t.textContent = label(lon, "E", "W"); axes.append(t);
    }
    for (let lat = Math.ceil(view.s / step) * step; lat <= view.n; lat += step) {
      axes.append(svgEl("line", { x1: PAD.left, x2: PAD.left + plotW, y1: y(lat), y2: y(lat) }));
      const t = svgEl("text", { x: PAD.left - 4, y: y(lat) + 4, "text-anchor": "end" }); t.textContent = label(lat, "N", "S"); axes.append(t);
    }
    svg.append(axes);
    // cells: the hexagon, and a dot where the hexagon is too small to see
    const most = Math.max(...cells.map((c) => c.rows), 1), g = svgEl("g", { class: "cells", "clip-path": "url(#map-plot)" });
    for (const c of cells) {
      const shade = 0.35 + 0.65 * Math.sqrt(c.rows / most);
      const hex = svgEl("polygon", { points: c.boundary.map((p) => x(p[1]).toFixed(1) + "," + y(p[0]).toFixed(1)).join(" "), "fill-opacity": shade.toFixed(2) });
      const title = svgEl("title"); title.textContent = `${c.cell}: ${c.rows} rows`; hex.append(title);
      g.append(hex);
      const widthPx = Math.abs(x(c.boundary[0][1]) - x(c.boundary[3][1]));
      if (widthPx < 6) g.append(svgEl("circle", { cx: x(c.center[1]), cy: y(c.center[0]), r: 3 + 4 * Math.sqrt(c.rows / most), "fill-opacity": shade.toFixed(2) }));
    }
    svg.append(g);
    svg.append(svgEl("rect", { class: "frame", x: PAD.left, y: PAD.top, width: plotW, height: plotH }));
  }

  App.coverageMap = function coverageMap(coverage) {
    const cells = coverage.h3_cells || [];
    const figure = el("figure", { class: "map-figure" });
    if (!cells.length) {
      figure.append(el("p", { class: "hint", id: "no-locations" }, "This dataset publishes no locations, so there is no coverage map."));
      return figure;
    }
    const svg = svgEl("svg", { class: "map", viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `Coverage: ${cells.length} H3 cells of resolution ${coverage.h3_resolution}` });
    const groups = regions(cells), buttons = el("div", { class: "row map-zoom", role: "group", "aria-label": "Zoom the map" });
    const caption = el("figcaption", { class: "meta" });
    figure.append(buttons, svg, caption);
    loadReference().then((layer) => {
      const show = (subset, minSpan, name) => {
        draw(svg, cells, bounds(subset, minSpan), layer);
        for (const b of buttons.children) b.setAttribute("aria-pressed", b.textContent === name ? "true" : "false");
      };
      const all = "All cells";
      buttons.append(el("button", { class: "secondary", onclick: () => show(cells, 20, all) }, all));
      for (const r of groups) {
        const name = `${Math.abs(r.lat).toFixed(1)}°${r.lat >= 0 ? "N" : "S"} ${Math.abs(r.lon).toFixed(1)}°${r.lon >= 0 ? "E" : "W"} (${r.cells.length} cells)`;
        buttons.append(el("button", { class: "secondary", onclick: () => show(r.cells, 0.6, name) }, name));
      }
      show(cells, 20, all);
      caption.textContent = `H3 resolution ${coverage.h3_resolution} cells, shaded by rows per cell (most: ${Math.max(...cells.map((c) => c.rows))}). ` +
        (layer.source ? "Reference layer: " + layer.source + "." : "Reference layer unavailable: " + (layer.error || "not installed") + ".");
    });
    return figure;
  };
})();
