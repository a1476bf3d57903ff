// Small SVG line charts for the metrics tab: one series or two over the last hour's minutes,
// drawn with DOM calls (no innerHTML, no library).

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function hhmm(iso) {
  const d = new Date(iso);
  return isNaN(d) ? "" : d.toTimeString().slice(0, 5);
}

/**
 * An SVG chart. `series`: [{label, values: (number|null)[], cls}] over `times` (ISO strings);
 * null values leave gaps. `unit` labels the y axis.
 */
export function lineChart({ id, title, times, series, unit = "" }) {
  const W = 560, H = 200, L = 48, R = 12, T = 28, B = 28;
  const svg = el("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": title,
    "data-chart": id,
    class: "chart",
  });
  svg.append(el("title", {}, title));
  svg.append(el("text", { x: L, y: 16, class: "chart-title" }, title));
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  const max = niceMax(Math.max(0, ...all));
  const n = Math.max(times.length, 2);
  const x = (i) => L + ((W - L - R) * i) / (n - 1);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  for (const f of [0, 0.5, 1]) {
    const v = max * f;
    svg.append(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    const label = Number.isInteger(v) ? String(v) : v.toFixed(1);
    svg.append(el("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, label + unit));
  }
  const last = times.length - 1;
  for (const [i, anchor] of [[0, "start"], [Math.floor(last / 2), "middle"], [last, "end"]]) {
    if (times[i] === undefined || (i === 0 && last === 0 && anchor !== "start")) continue;
    svg.append(el("text", { x: x(i), y: H - 8, class: "axis", "text-anchor": anchor }, hhmm(times[i])));
  }
  series.forEach((s, si) => {
    let d = "";
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    if (d) svg.append(el("path", { d, class: `series ${s.cls || "s" + si}` }));
    // Single points (a lone minute between gaps) still show.
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const lone =
        (i === 0 || s.values[i - 1] == null) && (i === s.values.length - 1 || s.values[i + 1] == null);
      if (lone) svg.append(el("circle", { cx: x(i), cy: y(v), r: 2.5, class: `dot ${s.cls || "s" + si}` }));
    });
    if (series.length > 1) {
      const lx = W - R - 150 + si * 75;
      svg.append(el("rect", { x: lx, y: 8, width: 10, height: 10, class: `key ${s.cls || "s" + si}` }));
      svg.append(el("text", { x: lx + 14, y: 17, class: "axis" }, s.label));
    }
  });
  return svg;
}
