"use strict";
// glus-cli report: renders the run described by the JSON in #glus-data. No network: every media path is
// relative to this file. Rows are rendered a page at a time and expression sections only when opened (or
// all at once for a small run), so a dataset of thousands of expressions stays light.
(function () {
  const DATA = JSON.parse(document.getElementById("glus-data").textContent);
  const ROWS = DATA.expressions;
  const SCORED = DATA.evaluation !== null;
  const ALL_SECTIONS = ROWS.length <= 24; // a small run shows every section at once
  const PAGE = 50;
  const SVGNS = "http://www.w3.org/2000/svg";
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const pct = (value, digits) => (value === null || value === undefined ? "–" : (100 * value).toFixed(digits));
  const fixed = (value, digits) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
  const sigmoid = (x) => 1 / (1 + Math.exp(-x));
  const label = (row) => (row.video ? row.video + " / " + row.exp_id : "expression " + row.exp_id);
  ROWS.forEach((row, index) => { row.index = index; });

  // ---------------------------------------------------------------- header and overview
  function header() {
    const top = document.getElementById("top");
    const status = DATA.partial.length
      ? el("span", { class: "badge partial", id: "status" }, "partial")
      : DATA.failures.length
        ? el("span", { class: "badge failed", id: "status" }, "finished, " + DATA.failures.length + " video(s) failed")
        : el("span", { class: "badge done", id: "status" }, "complete");
    top.append(
      el("h1", {}, DATA.title, status),
      el("div", { class: "sub" }, DATA.source ? "source: " + DATA.source + "  ·  " : "", "written by " + DATA.generator),
    );
  }

  function overview() {
    const box = document.getElementById("overview");
    if (DATA.partial.length) {
      box.append(el("div", { class: "notice", id: "partial" },
        el("strong", {}, "This run is not finished: the report shows what is done."),
        el("ul", {}, DATA.partial.map((reason) => el("li", {}, reason)))));
    }
    if (DATA.failures.length) {
      box.append(el("div", { class: "notice error", id: "failures" },
        el("strong", {}, DATA.failures.length + " video(s) failed"),
        el("ul", {}, DATA.failures.map((f) => el("li", {}, f.video + ": " + f.error)))));
    }
    const done = ROWS.filter((row) => row.done);
    const videos = new Set(ROWS.map((row) => row.video)).size;
    const noSeg = done.reduce((sum, row) => sum + row.no_seg.length, 0);
    const frames = done.reduce((sum, row) => sum + (row.frames || 0), 0);
    const ious = done.filter((row) => row.iou !== null && row.iou !== undefined);
    const meanIou = ious.length ? ious.reduce((sum, row) => sum + row.iou, 0) / ious.length : null;
    const stats = el("div", { class: "stats" });
    const stat = (key, value, id, main) =>
      el("div", { class: main ? "stat main" : "stat" }, el("div", { class: "v", id: id }, value), el("div", { class: "k" }, key));
    if (SCORED) {
      const overall = DATA.evaluation.overall;
      stats.append(
        el("div", { class: "stat main", title: "J&F = " + overall.JF },
          el("div", { class: "v", id: "mean-jf", "data-value": overall.JF }, overall.text.JF), el("div", { class: "k" }, "J&F %")),
        el("div", { class: "stat", title: "J = " + overall.J },
          el("div", { class: "v", id: "mean-j", "data-value": overall.J }, overall.text.J), el("div", { class: "k" }, "J (region) %")),
        el("div", { class: "stat", title: "F = " + overall.F },
          el("div", { class: "v", id: "mean-f", "data-value": overall.F }, overall.text.F), el("div", { class: "k" }, "F (boundary) %")),
      );
    }
    stats.append(
      stat("expressions", done.length === ROWS.length ? String(ROWS.length) : done.length + " / " + ROWS.length, "n-expressions"),
      stat("videos", String(videos), "n-videos"),
      stat("frames", String(frames), "n-frames"),
      stat("frames without [SEG]", String(noSeg), "n-noseg"),
      stat("mean predicted IoU", fixed(meanIou, 3), "mean-iou"),
    );
    box.append(stats);
    if (SCORED) {
      const ev = DATA.evaluation;
      const worst = ROWS.filter((row) => row.scores).sort((a, b) => a.scores.JF - b.scores.JF || a.index - b.index).slice(0, 6);
      const scores = el("div", { class: "scores" }, histogram(),
        el("div", { class: "card worst-list" }, el("h2", {}, "Lowest J&F"),
          el("ol", {}, worst.map((row) => el("li", {},
            el("a", { href: "#exp-" + row.index, onclick: (event) => { event.preventDefault(); openSection(row.index); } }, label(row)),
            " ", el("span", { class: "muted" }, row.text), " ", el("strong", {}, row.scores.text.JF + "%"))))));
      if (ev.warnings.length) {
        scores.append(el("div", { class: "card", style: "flex: 1 1 320px" }, el("h2", {}, "glus eval warnings (" + ev.warnings.length + ")"),
          el("ul", { class: "muted" }, ev.warnings.slice(0, 8).map((w) => el("li", {}, w))),
          ev.warnings.length > 8 ? el("div", { class: "muted" }, "… and " + (ev.warnings.length - 8) + " more in eval.json") : null));
      }
      box.append(scores);
    }
  }

  // ---------------------------------------------------------------- J&F histogram
  let binFilter = null;
  function histogram() {
    const bins = new Array(10).fill(0);
    for (const row of ROWS) if (row.scores) bins[Math.min(9, Math.floor(row.scores.JF * 10))] += 1;
    const W = 520, H = 176, left = 34, bottom = 32, top = 12;
    const max = Math.max(1, ...bins);
    const barW = (W - left - 8) / 10;
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "J&F histogram", id: "histogram" });
    for (const frac of [0, 0.5, 1]) {
      const y = top + (H - top - bottom) * (1 - frac);
      chart.append(svg("line", { x1: left, x2: W - 4, y1: y, y2: y, stroke: "#e3e6eb" }),
        svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 10, fill: "#667085" }, Math.round(max * frac)));
    }
    bins.forEach((count, i) => {
      const h = (H - top - bottom) * count / max;
      const x = left + i * barW + 2;
      const bar = svg("rect", { class: "bar", x: x, y: H - bottom - h, width: barW - 4, height: Math.max(h, count ? 1 : 0), "data-bin": i },
        svg("title", {}, `J&F ${i * 10}–${i * 10 + 10}%: ${count} expressions (click to filter)`));
      bar.addEventListener("click", () => {
        binFilter = binFilter === i ? null : i;
        chart.querySelectorAll("rect.bar").forEach((b) => b.classList.toggle("on", Number(b.dataset.bin) === binFilter));
        state.page = 0;
        renderTable();
      });
      chart.append(bar, svg("text", { x: x - 2, y: H - bottom + 14, "text-anchor": "middle", "font-size": 10, fill: "#667085" }, i * 10));
      if (count) chart.append(svg("text", { x: x + (barW - 4) / 2, y: H - bottom - h - 3, "text-anchor": "middle", "font-size": 10, fill: "#1d2330" }, count));
    });
    chart.append(svg("text", { x: left + 10 * barW, y: H - bottom + 14, "text-anchor": "middle", "font-size": 10, fill: "#667085" }, 100),
      svg("text", { x: left + 5 * barW, y: H - 1, "text-anchor": "middle", "font-size": 10, fill: "#667085" }, "J&F (%)"));
    return el("div", { class: "card hist" }, el("h2", {}, "J&F per expression"), chart);
  }

  // ---------------------------------------------------------------- the table
  const COLUMNS = [
    DATA.layout === "segment" ? null : { key: "video", title: "Video", get: (r) => r.video, text: true },
    { key: "exp_id", title: "Exp", get: (r) => r.exp_id, text: true },
    { key: "text", title: "Expression", get: (r) => r.text || (r.done ? "" : "(unfinished)"), text: true, cls: "text" },
    { key: "frames", title: "Frames", get: (r) => r.frames, num: true },
    { key: "seconds", title: "Seconds", get: (r) => r.seconds, num: true, show: (v) => fixed(v, 1) },
    { key: "no_seg", title: "No [SEG]", get: (r) => (r.record ? r.no_seg.length : null), num: true },
    { key: "iou", title: "Pred. IoU", get: (r) => r.iou, num: true, show: (v) => fixed(v, 3) },
  ];
  if (COLUMNS[0] === null) COLUMNS.shift(); // one video: no column for it
  if (SCORED) {
    COLUMNS.push(
      { key: "J", title: "J %", get: (r) => (r.scores ? r.scores.J : null), num: true, score: "J" },
      { key: "F", title: "F %", get: (r) => (r.scores ? r.scores.F : null), num: true, score: "F" },
      { key: "JF", title: "J&F %", get: (r) => (r.scores ? r.scores.JF : null), num: true, score: "JF" },
    );
  }
  const state = SCORED ? { sort: "JF", dir: 1, page: 0, filter: "", noSegOnly: false } : { sort: null, dir: 1, page: 0, filter: "", noSegOnly: false };
  let openIndex = null;

  function compare(column, dir) {
    return (a, b) => {
      const x = column.get(a), y = column.get(b);
      const xm = x === null || x === undefined, ym = y === null || y === undefined;
      if (xm || ym) return xm === ym ? a.index - b.index : xm ? 1 : -1; // no value: always last
      const c = column.text ? collator.compare(String(x), String(y)) : x - y;
      return c !== 0 ? dir * c : a.index - b.index;
    };
  }

  function visibleRows() {
    const needle = state.filter.trim().toLowerCase();
    let rows = ROWS.filter((row) =>
      (!needle || (row.video + " " + row.exp_id + " " + row.text).toLowerCase().includes(needle)) &&
      (!state.noSegOnly || row.no_seg.length > 0) &&
      (binFilter === null || (row.scores && Math.min(9, Math.floor(row.scores.JF * 10)) === binFilter)));
    if (state.sort !== null) rows = rows.slice().sort(compare(COLUMNS.find((c) => c.key === state.sort), state.dir));
    return rows;
  }

  function browser() {
    const box = document.getElementById("browser");
    const search = el("input", { type: "search", id: "filter", placeholder: "Filter by video, id or expression…", "aria-label": "filter" });
    search.addEventListener("input", () => { state.filter = search.value; state.page = 0; renderTable(); });
    const noSeg = el("input", { type: "checkbox", id: "noseg-only" });
    noSeg.addEventListener("change", () => { state.noSegOnly = noSeg.checked; state.page = 0; renderTable(); });
    const head = el("tr", {}, COLUMNS.map((column) => {
      const th = el("th", { class: column.num ? "num" : null, "data-key": column.key, scope: "col", title: "sort by " + column.title }, column.title);
      th.addEventListener("click", () => {
        if (state.sort === column.key) state.dir = -state.dir;
        else { state.sort = column.key; state.dir = 1; }
        state.page = 0;
        renderTable();
      });
      return th;
    }));
    box.append(
      el("div", { class: "card" },
        el("h2", {}, SCORED ? "Expressions, worst J&F first" : "Expressions"),
        el("div", { class: "controls" }, search, el("label", {}, noSeg, " only with frames without [SEG]"), el("span", { class: "count", id: "count" })),
        el("table", { class: "runs", id: "runs" }, el("thead", {}, head), el("tbody", {})),
        el("div", { class: "pager", id: "pager" })));
    renderTable();
  }

  function renderTable() {
    const rows = visibleRows();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const shown = rows.slice(state.page * PAGE, state.page * PAGE + PAGE);
    document.querySelectorAll("#runs th").forEach((th) => {
      if (th.dataset.key === state.sort) th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
    const body = document.querySelector("#runs tbody");
    body.replaceChildren(...shown.map((row) => {
      const tr = el("tr", { "data-index": row.index, class: row.index === openIndex ? "open" : null },
        COLUMNS.map((column) => {
          const value = column.get(row);
          const shownValue = column.score ? (row.scores ? row.scores.text[column.score] : "–") : column.show ? column.show(value) : value === null || value === undefined ? "–" : value;
          const cls = [column.num ? "num" : "", column.cls || "", column.key === "no_seg" && value > 0 ? "bad" : ""].join(" ").trim();
          const cell = el("td", { class: cls || null }, shownValue);
          if (column.score === "JF" && row.scores) cell.style.background = scoreColor(row.scores.JF);
          return cell;
        }));
      if (!row.done) tr.classList.add("muted");
      tr.tabIndex = 0; // rows open from the keyboard too
      tr.addEventListener("click", () => openSection(row.index));
      tr.addEventListener("keydown", (event) => { if (event.key === "Enter") openSection(row.index); });
      return tr;
    }));
    if (!shown.length) body.append(el("tr", {}, el("td", { colspan: COLUMNS.length, class: "empty" }, "No expression matches.")));
    document.getElementById("count").textContent = rows.length === ROWS.length ? ROWS.length + " expressions" : rows.length + " of " + ROWS.length + " expressions";
    const pager = document.getElementById("pager");
    if (pages === 1) { pager.replaceChildren(); return; }
    const go = (page) => () => { state.page = page; renderTable(); };
    pager.replaceChildren(
      el("button", { onclick: go(0), disabled: state.page === 0 }, "« first"),
      el("button", { onclick: go(state.page - 1), disabled: state.page === 0, id: "prev" }, "‹ previous"),
      el("span", { class: "muted" }, `page ${state.page + 1} of ${pages}`),
      el("button", { onclick: go(state.page + 1), disabled: state.page === pages - 1, id: "next" }, "next ›"),
      el("button", { onclick: go(pages - 1), disabled: state.page === pages - 1 }, "last »"));
  }

  function scoreColor(value) {
    const hue = Math.round(120 * Math.max(0, Math.min(1, value)));
    return `hsla(${hue}, 70%, 50%, 0.18)`;
  }

  // ---------------------------------------------------------------- expression sections
  function openSection(index) {
    openIndex = index;
    const details = document.getElementById("details");
    let article = document.getElementById("exp-" + index);
    if (!article) {
      if (!ALL_SECTIONS) details.replaceChildren(); // one open section at a time in a large run
      article = section(ROWS[index]);
      details.prepend(article);
    }
    document.querySelectorAll("#runs tbody tr").forEach((tr) => tr.classList.toggle("open", Number(tr.dataset.index) === index));
    article.scrollIntoView({ block: "start" });
    article.classList.add("flash");
    setTimeout(() => article.classList.remove("flash"), 1200);
    if (history.replaceState) history.replaceState(null, "", "#exp-" + index);
  }

  function section(row) {
    const meta = el("div", { class: "meta" });
    if (row.frames !== null && row.frames !== undefined) meta.append(el("span", {}, row.frames + " frames"));
    if (row.seconds !== null && row.seconds !== undefined) meta.append(el("span", {}, fixed(row.seconds, 1) + " s"));
    if (row.iou !== null && row.iou !== undefined) meta.append(el("span", {}, "mean predicted IoU " + fixed(row.iou, 3)));
    if (row.keyframe !== null && row.keyframe !== undefined) meta.append(el("span", {}, "key frame " + row.keyframe));
    if (row.scores) meta.append(el("span", {}, `J ${row.scores.text.J}%  F ${row.scores.text.F}%  J&F ${row.scores.text.JF}%`));
    if (!row.done) meta.append(el("span", { class: "bad" }, row.missing ? "no prediction folder (scored as empty masks)" : "unfinished"));
    const article = el("article", { class: "exp", id: "exp-" + row.index },
      el("h3", {}, label(row), row.text ? " — “" + row.text + "”" : ""), meta);
    if (row.dir !== null) {
      article.append(el("div", { class: "media" },
        row.overlay
          ? el("figure", {}, el("video", { src: row.overlay, controls: true, muted: true, loop: true, playsinline: true, preload: "metadata" }),
            el("figcaption", {}, "overlay: the mask tinted red"))
          : el("div", { class: "placeholder" }, "no overlay video (run with --format overlay)"),
        row.preview
          ? el("figure", {}, el("img", { src: row.preview, loading: "lazy", alt: "contact sheet of " + label(row) }),
            el("figcaption", {}, "contact sheet: sampled frames, and [SEG] / predicted IoU per frame"))
          : el("div", { class: "placeholder" }, "no contact sheet yet")));
    }
    if (row.series) article.append(chart(row));
    if (row.record) {
      article.append(el("div", { class: "noseg" },
        row.no_seg.length
          ? [el("strong", {}, `Frames without [SEG] (${row.no_seg.length}): `), row.no_seg.map((name) => el("span", { class: "chip" }, name))]
          : el("span", { class: "muted" }, "[SEG] on every frame.")));
    }
    if (row.worst.length) {
      article.append(el("div", { class: "worst" },
        el("div", {}, el("strong", {}, "Worst frames"), el("span", { class: "key" }, "  prediction | ground truth | difference:",
          el("i", { style: "background:#3cbe5a" }), "both", el("i", { style: "background:#e63c32" }), "predicted only", el("i", { style: "background:#3c78f0" }), "missed")),
        el("div", { class: "row" }, row.worst.map((item) => el("figure", {},
          el("img", { src: item.src, loading: "lazy", alt: "worst frame " + item.frame }),
          el("figcaption", {}, `frame ${item.frame} · J ${pct(item.J, 1)}%`))))));
    }
    if (row.dir !== null) {
      article.append(el("div", { class: "links" },
        el("a", { href: row.dir }, "mask folder"),
        row.record ? el("a", { href: row.record }, "expression.json") : null,
        row.overlay ? el("a", { href: row.overlay }, "overlay video") : null,
        row.preview ? el("a", { href: row.preview }, "contact sheet") : null));
    }
    return article;
  }

  // ---------------------------------------------------------------- per-frame chart (inline SVG)
  function chart(row) {
    const s = row.series;
    const n = s.frames.length;
    const W = 900, H = 190, left = 36, right = 10, top = 8, plotH = 130, stripY = top + plotH + 10, stripH = 12;
    const x = (i) => left + (n <= 1 ? (W - left - right) / 2 : (i * (W - left - right)) / (n - 1));
    const y = (v) => top + plotH * (1 - v);
    const step = n <= 1 ? W - left - right : (W - left - right) / (n - 1);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "per-frame scores of " + label(row), class: "frames" });
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      root.append(svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), stroke: v === 0 || v === 1 ? "#d5d9e0" : "#eef0f3" }),
        svg("text", { x: left - 6, y: y(v) + 3.5, "text-anchor": "end", "font-size": 10, fill: "#667085" }, v.toFixed(2)));
    }
    s.seg.forEach((seg, i) => {
      const x0 = Math.max(left, x(i) - step / 2), x1 = Math.min(W - right, x(i) + step / 2);
      if (!seg) root.append(svg("rect", { x: x0, y: top, width: Math.max(1, x1 - x0), height: plotH, fill: "rgba(214,69,69,0.13)", class: "noseg-band" }));
      root.append(svg("rect", { x: x0, y: stripY, width: Math.max(1, x1 - x0), height: stripH, fill: seg ? "#3aa45b" : "#d64545" }));
    });
    if (row.keyframe !== null && row.keyframe !== undefined && row.keyframe < n) {
      root.append(svg("line", { x1: x(row.keyframe), x2: x(row.keyframe), y1: top, y2: top + plotH, stroke: "#1d2330", "stroke-dasharray": "4 3" }));
    }
    const line = (values, color, transform) => {
      let d = "", pen = false;
      values.forEach((v, i) => {
        if (v === null) { pen = false; return; }
        d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(transform(v)).toFixed(1);
        pen = true;
      });
      const path = svg("path", { d: d, fill: "none", stroke: color, "stroke-width": 2, "stroke-linejoin": "round" });
      const dots = n <= 60 ? values.map((v, i) => (v === null ? null : svg("circle", { cx: x(i), cy: y(transform(v)), r: 2.5, fill: color }))) : [];
      return [path, ...dots];
    };
    root.append(...line(s.object, "#e08a1e", sigmoid), ...line(s.iou, "#2f6fdb", (v) => v));
    const every = Math.max(1, Math.ceil((n - 1) / 8)); // at most 9 frame names under the axis
    for (let i = 0; i < n; i += every) {
      const anchor = n > 1 && i === 0 ? "start" : "middle";
      root.append(svg("text", { x: x(i), y: H - 4, "text-anchor": anchor, "font-size": 10, fill: "#667085" }, s.frames[i]));
    }
    if (n > 1 && (n - 1) % every > every / 2) { // the last frame, unless a tick is close to it
      root.append(svg("text", { x: x(n - 1), y: H - 4, "text-anchor": "end", "font-size": 10, fill: "#667085" }, s.frames[n - 1]));
    }
    const cursor = svg("line", { y1: top, y2: stripY + stripH, stroke: "#1d2330", "stroke-width": 1, visibility: "hidden" });
    root.append(cursor);
    const tip = el("div", { class: "tip" });
    const box = el("div", { class: "chart" },
      el("div", { class: "legend" },
        el("span", {}, el("i", { style: "background:#2f6fdb" }), "SAM2 predicted IoU"),
        el("span", {}, el("i", { style: "background:#e08a1e" }), "object score (as sigmoid probability)"),
        el("span", {}, el("i", { class: "box", style: "background:#3aa45b" }), "[SEG]"),
        el("span", {}, el("i", { class: "box", style: "background:#d64545" }), "no [SEG] (blank mask)"),
        row.keyframe !== null && row.keyframe !== undefined ? el("span", {}, "- - key frame") : null),
      root, tip);
    root.addEventListener("mousemove", (event) => {
      const rect = root.getBoundingClientRect();
      const px = ((event.clientX - rect.left) / rect.width) * W;
      const i = Math.max(0, Math.min(n - 1, Math.round(n <= 1 ? 0 : ((px - left) / (W - left - right)) * (n - 1))));
      cursor.setAttribute("x1", x(i)); cursor.setAttribute("x2", x(i)); cursor.setAttribute("visibility", "visible");
      const iou = s.iou[i], obj = s.object[i];
      tip.textContent = `${s.frames[i]}: ` + (s.seg[i] ? `IoU ${fixed(iou, 3)} · object score ${fixed(obj, 2)}` : "no [SEG]");
      tip.style.display = "block";
      const bx = box.getBoundingClientRect();
      tip.style.left = Math.min(bx.width - 200, Math.max(0, event.clientX - bx.left + 12)) + "px";
      tip.style.top = (event.clientY - bx.top - 30) + "px";
    });
    root.addEventListener("mouseleave", () => { cursor.setAttribute("visibility", "hidden"); tip.style.display = "none"; });
    return box;
  }

  header();
  overview();
  browser();
  if (ALL_SECTIONS) {
    const details = document.getElementById("details");
    for (const row of ROWS) details.append(section(row));
  }
  const target = /^#exp-(\d+)$/.exec(location.hash);
  if (target && ROWS[Number(target[1])]) openSection(Number(target[1]));
  document.body.append(el("footer", {}, `${ROWS.length} expressions · ${DATA.generator} · a static page: no server, no network`));
  document.body.dataset.ready = "1";
})();
