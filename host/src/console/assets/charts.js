// Small SVG charts for the console: stacked bars and lines over time buckets, with
// axes, gridlines, a legend and per-point tooltips. No dependencies: the console must
// work air-gapped and every asset is served by the gateway.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#1f4fd1", "#12805c", "#b54708", "#c01048", "#6941c6", "#0e7090",
    "#4e5ba6", "#9e77ed", "#e04f16", "#667085", "#155b75"];
  const W = 720, H = 240, PAD = { l: 70, r: 12, t: 10, b: 26 };

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  // A round axis maximum and tick step for values up to `max`.
  function niceScale(max) {
    if (!(max > 0)) return { max: 1, step: 0.25 };
    const exp = Math.pow(10, Math.floor(Math.log10(max)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      const step = (m * exp) / 4;
      if (step * 4 >= max) return { max: step * 4, step };
    }
    return { max, step: max / 4 };
  }

  function timeLabel(ms, bucketMs) {
    const d = new Date(ms);
    const pad = (n) => String(n).padStart(2, "0");
    if (bucketMs >= 86400000) return `${d.getMonth() + 1}/${d.getDate()}`;
    return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function frame(svg, buckets, bucketMs, scale, fmt) {
    const ih = H - PAD.t - PAD.b;
    const axis = el("g", { class: "axis" }, svg);
    for (let v = 0; v <= scale.max + 1e-12; v += scale.step) {
      const y = PAD.t + ih - (v / scale.max) * ih;
      el("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "gridline" }, axis);
      const t = el("text", { x: PAD.l - 6, y: y + 3, "text-anchor": "end" }, axis);
      t.textContent = fmt(v);
    }
    const n = buckets.length;
    const every = Math.max(1, Math.ceil(n / 8));
    const iw = W - PAD.l - PAD.r;
    for (let i = 0; i < n; i += every) {
      const x = PAD.l + (i + 0.5) * (iw / n);
      const t = el("text", { x, y: H - 8, "text-anchor": "middle" }, axis);
      t.textContent = timeLabel(buckets[i], bucketMs);
    }
  }

  function legend(container, series) {
    const lg = document.createElement("div");
    lg.className = "legend";
    series.forEach((s, i) => {
      const item = document.createElement("span");
      const sw = document.createElement("i");
      sw.style.background = PALETTE[i % PALETTE.length];
      item.appendChild(sw);
      item.appendChild(document.createTextNode(s.name));
      lg.appendChild(item);
    });
    container.appendChild(lg);
  }

  function shell(container, title) {
    const box = document.createElement("div");
    box.className = "chart";
    const h = document.createElement("h3");
    h.textContent = title;
    box.appendChild(h);
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
    box.appendChild(svg);
    container.appendChild(box);
    return { box, svg };
  }

  // series: [{name, values: [number]}], stacked per bucket.
  // `fmt` labels points, `tick` (default `fmt`) the axis.
  function bars(container, title, buckets, bucketMs, series, fmt, tick) {
    const { box, svg } = shell(container, title);
    const totals = buckets.map((_, i) => series.reduce((a, s) => a + (s.values[i] || 0), 0));
    const scale = niceScale(Math.max(0, ...totals));
    frame(svg, buckets, bucketMs, scale, tick || fmt);
    const ih = H - PAD.t - PAD.b, iw = W - PAD.l - PAD.r, bw = iw / Math.max(1, buckets.length);
    buckets.forEach((b, i) => {
      let y0 = PAD.t + ih;
      series.forEach((s, k) => {
        const v = s.values[i] || 0;
        if (v <= 0) return;
        const h = (v / scale.max) * ih;
        const r = el("rect", {
          x: PAD.l + i * bw + bw * 0.12, y: y0 - h, width: Math.max(1, bw * 0.76), height: h,
          fill: PALETTE[k % PALETTE.length], class: "bar-rect",
        }, svg);
        el("title", {}, r).textContent = `${s.name} · ${timeLabel(b, bucketMs)}: ${fmt(v)}`;
        y0 -= h;
      });
    });
    legend(box, series);
    return box;
  }

  // series: [{name, values: [number|null]}], each its own line.
  function lines(container, title, buckets, bucketMs, series, fmt, tick) {
    const { box, svg } = shell(container, title);
    const all = series.flatMap((s) => s.values.filter((v) => v != null));
    const scale = niceScale(Math.max(0, ...all));
    frame(svg, buckets, bucketMs, scale, tick || fmt);
    const ih = H - PAD.t - PAD.b, iw = W - PAD.l - PAD.r, step = iw / Math.max(1, buckets.length);
    series.forEach((s, k) => {
      const color = PALETTE[k % PALETTE.length];
      let d = "";
      s.values.forEach((v, i) => {
        if (v == null) return;
        const x = PAD.l + (i + 0.5) * step, y = PAD.t + ih - (v / scale.max) * ih;
        d += (d === "" || s.values[i - 1] == null ? "M" : "L") + x.toFixed(1) + "," + y.toFixed(1);
        const c = el("circle", { cx: x, cy: y, r: 2.5, fill: color }, svg);
        el("title", {}, c).textContent = `${s.name} · ${timeLabel(buckets[i], bucketMs)}: ${fmt(v)}`;
      });
      if (d) el("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "line-path" }, svg);
    });
    legend(box, series);
    return box;
  }

  return { bars, lines, palette: PALETTE };
})();
