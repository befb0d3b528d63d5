// minipipe console charts: line, bar, area, scatter and pie drawn as SVG from a query result.
// MPChart.draw(element, result, {type, x, y: [columns], series}) — result is {columns, rows} as the SQL API
// answers (values as text, null for NULL). With a series column, the first y column is split by its values.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2f6fde", "#e8710a", "#1e8e3e", "#d93025", "#9334e6", "#12b5cb", "#f9ab00", "#7b5e57", "#e52592", "#5f6368"];
  const MAX_POINTS = 5000;

  function el(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function num(v) {
    if (v === null || v === undefined || v === "") return NaN;
    const n = Number(v);
    if (!isNaN(n)) return n;
    const t = Date.parse(v.replace(" ", "T") + (/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? "" : "Z"));
    return isNaN(t) ? NaN : t;
  }
  function fmt(n) {
    if (!isFinite(n)) return "";
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(1).replace(/\.0$/, "") + "G";
    if (a >= 1e6) return (n / 1e6).toFixed(1).replace(/\.0$/, "") + "M";
    if (a >= 1e4) return (n / 1e3).toFixed(1).replace(/\.0$/, "") + "k";
    if (Number.isInteger(n)) return String(n);
    return n.toPrecision(3);
  }
  function ticks(lo, hi, n) {
    if (lo === hi) { lo -= 1; hi += 1; }
    const step0 = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= step0) || step0;
    const out = [];
    for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(12));
    return out;
  }

  // series builds [{name, points: [[xLabelOrNumber, y]]}] and the x categories.
  function series(result, spec) {
    const ci = name => result.columns.indexOf(name);
    const xi = ci(spec.x);
    if (xi < 0) throw new Error("choose the x axis column");
    const ys = (spec.y || []).map(ci).filter(i => i >= 0);
    if (!ys.length) throw new Error("choose at least one y column");
    const rows = result.rows.slice(0, MAX_POINTS);
    const cats = [], seen = new Map();
    const cat = v => { const k = v === null ? "NULL" : v; if (!seen.has(k)) { seen.set(k, cats.length); cats.push(k); } return seen.get(k); };
    const out = [];
    const si = spec.series ? ci(spec.series) : -1;
    if (si >= 0) {
      const by = new Map();
      for (const r of rows) {
        const name = r[si] === null ? "NULL" : r[si];
        if (!by.has(name)) { by.set(name, { name, points: [] }); }
        by.get(name).points.push([r[xi], num(r[ys[0]]), cat(r[xi])]);
      }
      out.push(...by.values());
    } else {
      for (const y of ys) out.push({ name: result.columns[y], points: rows.map(r => [r[xi], num(r[y]), cat(r[xi])]) });
    }
    return { series: out.slice(0, COLORS.length * 3), cats };
  }

  function legend(box, list) {
    const lg = document.createElement("div");
    lg.className = "legend";
    list.forEach((s, i) => {
      const sp = document.createElement("span");
      sp.textContent = s.name;
      sp.style.setProperty("--c", COLORS[i % COLORS.length]);
      lg.appendChild(sp);
    });
    box.appendChild(lg);
  }

  function draw(box, result, spec) {
    box.textContent = "";
    const W = Math.max(box.clientWidth || 600, 280), H = Math.max((box.clientHeight || 320) - 28, 160);
    const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "data-type": spec.type });
    let data;
    try { data = series(result, spec); } catch (e) { box.textContent = e.message; return; }
    if (spec.type === "pie") return pie(box, svg, W, H, data);
    const scatter = spec.type === "scatter";
    const xs = scatter ? data.series.flatMap(s => s.points.map(p => num(p[0]))).filter(isFinite) : null;
    const yv = data.series.flatMap(s => s.points.map(p => p[1])).filter(isFinite);
    if (!yv.length) { box.textContent = "no numeric values in the y columns"; return; }
    let ylo = Math.min(0, ...yv), yhi = Math.max(0, ...yv);
    const yt = ticks(ylo, yhi, 5); ylo = Math.min(ylo, yt[0]); yhi = Math.max(yhi, yt[yt.length - 1]);
    const L = 56, R = 12, T = 10, B = 42, pw = W - L - R, ph = H - T - B;
    const Y = v => T + ph - (v - ylo) / (yhi - ylo || 1) * ph;
    let X, band = 0;
    if (scatter) {
      if (!xs.length) { box.textContent = "a scatter chart needs a numeric x column"; return; }
      const xlo = Math.min(...xs), xhi = Math.max(...xs);
      X = p => L + (num(p[0]) - xlo) / ((xhi - xlo) || 1) * pw;
      for (const t of ticks(xlo, xhi, 6)) {
        if (t < xlo || t > xhi) continue;
        const x = L + (t - xlo) / ((xhi - xlo) || 1) * pw;
        svg.appendChild(el("text", { x, y: H - B + 16, "text-anchor": "middle" }, fmt(t)));
      }
    } else {
      band = pw / Math.max(data.cats.length, 1);
      X = p => L + band * p[2] + band / 2;
      const every = Math.ceil(data.cats.length / Math.max(1, Math.floor(pw / 70)));
      data.cats.forEach((c, i) => {
        if (i % every) return;
        const label = String(c).length > 14 ? String(c).slice(0, 13) + "…" : String(c);
        svg.appendChild(el("text", { x: L + band * i + band / 2, y: H - B + 16, "text-anchor": "middle", class: "xlabel" }, label));
      });
    }
    for (const t of yt) {
      svg.appendChild(el("line", { x1: L, x2: W - R, y1: Y(t), y2: Y(t), class: "gridline" }));
      svg.appendChild(el("text", { x: L - 6, y: Y(t) + 4, "text-anchor": "end" }, fmt(t)));
    }
    svg.appendChild(el("line", { x1: L, x2: L, y1: T, y2: T + ph, class: "axis" }));
    svg.appendChild(el("line", { x1: L, x2: W - R, y1: Y(0), y2: Y(0), class: "axis" }));
    svg.appendChild(el("text", { x: L + pw / 2, y: H - 6, "text-anchor": "middle" }, spec.x));
    const n = data.series.length;
    data.series.forEach((s, si) => {
      const color = COLORS[si % COLORS.length];
      const pts = s.points.filter(p => isFinite(p[1]));
      if (spec.type === "bar") {
        const bw = Math.max(1, Math.min(band * 0.8 / n, 60));
        for (const p of pts) {
          const x = L + band * p[2] + (band - bw * n) / 2 + bw * si, y0 = Y(0), y1 = Y(p[1]);
          const r = el("rect", { x, y: Math.min(y0, y1), width: bw, height: Math.max(1, Math.abs(y0 - y1)), fill: color, class: "bar" });
          r.appendChild(el("title", {}, `${s.name} ${p[0]}: ${p[1]}`));
          svg.appendChild(r);
        }
      } else if (spec.type === "scatter") {
        for (const p of pts) {
          const c = el("circle", { cx: X(p), cy: Y(p[1]), r: 3.5, fill: color, "fill-opacity": 0.75, class: "point" });
          c.appendChild(el("title", {}, `${s.name} ${p[0]}: ${p[1]}`));
          svg.appendChild(c);
        }
      } else {
        const d = pts.map((p, i) => (i ? "L" : "M") + X(p).toFixed(1) + "," + Y(p[1]).toFixed(1)).join("");
        if (spec.type === "area" && pts.length) {
          const a = d + `L${X(pts[pts.length - 1]).toFixed(1)},${Y(0)}L${X(pts[0]).toFixed(1)},${Y(0)}Z`;
          svg.appendChild(el("path", { d: a, fill: color, "fill-opacity": 0.18, stroke: "none", class: "area" }));
        }
        svg.appendChild(el("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "line" }));
      }
    });
    box.appendChild(svg);
    legend(box, data.series);
  }

  function pie(box, svg, W, H, data) {
    const s = data.series[0];
    const parts = s.points.filter(p => isFinite(p[1]) && p[1] > 0);
    const total = parts.reduce((a, p) => a + p[1], 0);
    if (!total) { box.textContent = "a pie needs positive values"; return; }
    const cx = W / 2, cy = H / 2, r = Math.min(W, H) / 2 - 16;
    let a0 = -Math.PI / 2;
    parts.forEach((p, i) => {
      const a1 = a0 + p[1] / total * 2 * Math.PI;
      const large = a1 - a0 > Math.PI ? 1 : 0;
      const d = parts.length === 1
        ? `M${cx - r},${cy}a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0`
        : `M${cx},${cy}L${cx + r * Math.cos(a0)},${cy + r * Math.sin(a0)}A${r},${r} 0 ${large},1 ${cx + r * Math.cos(a1)},${cy + r * Math.sin(a1)}Z`;
      const path = el("path", { d, fill: COLORS[i % COLORS.length], stroke: "#fff", class: "slice" });
      path.appendChild(el("title", {}, `${p[0]}: ${p[1]} (${(p[1] / total * 100).toFixed(1)}%)`));
      svg.appendChild(path);
      a0 = a1;
    });
    box.appendChild(svg);
    legend(box, parts.map(p => ({ name: `${p[0]} (${(p[1] / total * 100).toFixed(1)}%)` })));
  }

  window.MPChart = { draw, types: ["bar", "line", "area", "scatter", "pie"] };
})();
