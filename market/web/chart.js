// A chart of a query result: bars or a line of one numeric column against another column,
// drawn as SVG with labelled axes. No library: the page loads nothing from elsewhere.
"use strict";

(() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 640, H = 260, PAD = { left: 60, right: 12, top: 12, bottom: 56 };
  const NUMERIC = /^(u?int|float|double|decimal|halffloat)/;
  const svgEl = (tag, attrs = {}, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };

  App.numericColumns = (result) => result.columns.filter((c) => NUMERIC.test(c.type)).map((c) => c.name);

  // The first text or time column against the first numeric one that is not it.
  App.chartDefaults = (result) => {
    const numeric = App.numericColumns(result);
    const x = result.columns.find((c) => !NUMERIC.test(c.type))?.name ?? result.columns[0]?.name;
    const y = numeric.find((n) => n !== x);
    const time = result.columns.find((c) => c.name === x && c.type.startsWith("timestamp"));
    return { x, y, kind: time ? "line" : "bar" };
  };

  App.drawChart = (container, result, x, y, kind) => {
    const rows = result.rows.slice(0, 500).filter((r) => typeof r[y] === "number");
    const svg = svgEl("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${kind} chart of ${y} by ${x}` });
    container.replaceChildren(svg);
    if (!rows.length) { svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no numeric values to draw")); return; }
    const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
    const values = rows.map((r) => r[y]);
    let lo = kind === "line" ? Math.min(...values) : Math.min(0, ...values), hi = kind === "line" ? Math.max(...values) : Math.max(0, ...values);
    if (lo === hi) hi = lo + 1;
    const sy = (v) => PAD.top + ((hi - v) / (hi - lo)) * plotH;
    const band = plotW / rows.length, sx = (i) => PAD.left + band * (i + 0.5);
    const axis = svgEl("g", { class: "axis" });
    for (let k = 0; k <= 4; k++) {
      const v = lo + ((hi - lo) * k) / 4;
      axis.append(svgEl("line", { x1: PAD.left, x2: PAD.left + plotW, y1: sy(v), y2: sy(v) }));
      axis.append(svgEl("text", { x: PAD.left - 6, y: sy(v) + 4, "text-anchor": "end" }, App.fmt(Number(v.toPrecision(4)))));
    }
    const every = Math.ceil(rows.length / 12);
    rows.forEach((r, i) => {
      if (i % every) return;
      const label = String(App.fmt(r[x])).slice(0, 16);
      axis.append(svgEl("text", { x: sx(i), y: PAD.top + plotH + 14, "text-anchor": "end", transform: `rotate(-35 ${sx(i)} ${PAD.top + plotH + 14})` }, label));
    });
    axis.append(svgEl("text", { x: PAD.left + plotW / 2, y: H - 4, "text-anchor": "middle", class: "axis-title" }, x));
    axis.append(svgEl("text", { x: 12, y: PAD.top + plotH / 2, "text-anchor": "middle", class: "axis-title", transform: `rotate(-90 12 ${PAD.top + plotH / 2})` }, y));
    svg.append(axis);
    const marks = svgEl("g", { class: "marks" });
    if (kind === "line") {
      marks.append(svgEl("polyline", { points: rows.map((r, i) => `${sx(i).toFixed(1)},${sy(r[y]).toFixed(1)}`).join(" ") }));
    } else {
      rows.forEach((r, i) => {
        const bar = svgEl("rect", { x: sx(i) - band * 0.4, width: Math.max(band * 0.8, 1), y: Math.min(sy(r[y]), sy(0)), height: Math.abs(sy(r[y]) - sy(0)) });
        bar.append(svgEl("title", {}, `${App.fmt(r[x])}: ${App.fmt(r[y])}`));
        marks.append(bar);
      });
    }
    svg.append(marks);
  };
})();
