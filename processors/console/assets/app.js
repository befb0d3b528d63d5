// minipipe console: one page application over /console/api/. No build step: this file is served as written.
"use strict";
(function () {
  const API = "/console/api";
  const main = document.getElementById("main");
  let timers = [];
  let info = { engines: [] };

  // ---- helpers ----------------------------------------------------------------------------------------
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "class") e.className = v;
      else if (k === "value") e.value = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  async function api(path, opts) {
    opts = opts || {};
    const init = { method: opts.method || "GET", headers: {}, signal: opts.signal, credentials: "same-origin" };
    if (opts.body !== undefined) { init.headers["Content-Type"] = opts.type || "application/json"; init.body = JSON.stringify(opts.body); }
    const r = await fetch(API + path, init);
    if (r.status === 204) return null;
    const text = await r.text();
    let body; try { body = JSON.parse(text); } catch (e) { body = text; }
    if (!r.ok) {
      const msg = body && body.message ? body.message : (typeof body === "string" ? body : r.statusText);
      const err = new Error(msg); err.status = r.status; err.code = body && body.error_code; throw err;
    }
    return opts.raw ? text : body;
  }
  const reg = (path, opts) => api("/registry" + path, Object.assign({ type: "application/vnd.schemaregistry.v1+json" }, opts || {}));
  function errorBox(e) { return h("div", { class: "error", role: "alert" }, e.message || String(e)); }
  function bytes(n) { const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; } return (i ? n.toFixed(1) : n) + " " + u[i]; }
  const NF = new Intl.NumberFormat("en-US"); // one formatter: toLocaleString makes a new one for every number
  function count(n) { return NF.format(Number(n || 0)); }
  function rate(n) { return n ? (n >= 100 ? NF.format(Math.round(n)) : n.toFixed(1)) + "/s" : "0/s"; }
  // capped shows the first n rows of a long list, with a button for the rest (pages stay fast with 1,000 tables).
  function capped(rows, n, draw) {
    const box = h("div");
    const show = all => {
      box.textContent = "";
      box.append(draw(all ? rows : rows.slice(0, n)));
      if (!all && rows.length > n) box.append(h("p", {}, h("button", { class: "show-all", onclick: () => show(true) }, `show all ${count(rows.length)}`), h("span", { class: "muted" }, ` (the first ${n} shown)`)));
    };
    show(false);
    return box;
  }
  function age(t, now) {
    if (!t || t.startsWith("0001")) return "never";
    const s = Math.max(0, ((now ? Date.parse(now) : Date.now()) - Date.parse(t)) / 1000);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 172800) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function set(...kids) { main.textContent = ""; main.append(...kids); }
  function every(ms, fn) { timers.push(setInterval(fn, ms)); }
  function grid(columns, rows, opts) {
    opts = opts || {};
    const t = h("table", { class: "grid" + (opts.cls ? " " + opts.cls : "") });
    const head = h("tr");
    columns.forEach(c => head.append(h("th", { class: c.num ? "num" : "" }, c.label)));
    t.append(h("thead", {}, head));
    const body = h("tbody");
    rows.forEach(r => {
      const tr = h("tr", r._attrs || {});
      columns.forEach(c => { const v = c.get(r); tr.append(h("td", { class: c.num ? "num" : "" }, v instanceof Node || Array.isArray(v) ? v : (v === null || v === undefined ? "" : String(v)))); });
      body.append(tr);
    });
    t.append(body);
    return t;
  }

  // A result table whose columns sort when their header is clicked.
  function resultTable(res) {
    const wrap = h("div", { class: "scroll" });
    let order = null, desc = false;
    const numeric = res.types.map(t => /INT|DECIMAL|DOUBLE|FLOAT|REAL|NUMERIC|BIGINT/i.test(t || ""));
    function render() {
      let rows = res.rows;
      if (order !== null) {
        rows = rows.slice().sort((a, b) => {
          const x = a[order], y = b[order];
          if (x === y) return 0; if (x === null) return 1; if (y === null) return -1;
          const c = numeric[order] ? Number(x) - Number(y) : String(x).localeCompare(String(y));
          return desc ? -c : c;
        });
      }
      const t = h("table", { class: "grid result" });
      const tr = h("tr");
      res.columns.forEach((c, i) => tr.append(h("th", { class: "sortable" + (numeric[i] ? " num" : ""), title: res.types[i] || "", onclick: () => { desc = order === i ? !desc : false; order = i; render(); } },
        c, order === i ? (desc ? " ▼" : " ▲") : "")));
      t.append(h("thead", {}, tr));
      const body = h("tbody");
      for (const r of rows) body.append(h("tr", {}, r.map((v, i) => h("td", { class: numeric[i] ? "num" : "" }, v === null ? h("span", { class: "muted" }, "NULL") : v))));
      t.append(body);
      wrap.textContent = ""; wrap.append(t);
    }
    render();
    return wrap;
  }

  // ---- router -----------------------------------------------------------------------------------------
  const routes = [
    [/^#?\/?$/, overview, "overview"],
    [/^#\/tables$/, tablesPage, "tables"],
    [/^#\/tables\/(.+)$/, tablePage, "tables"],
    [/^#\/registry$/, registryPage, "registry"],
    [/^#\/registry\/(.+)$/, subjectPage, "registry"],
    [/^#\/deadletters$/, deadLettersPage, "deadletters"],
    [/^#\/deadletters\/(.+)$/, deadLetterTopic, "deadletters"],
    [/^#\/sql(?:\?q=([a-z0-9]+))?$/, sqlPage, "sql"],
    [/^#\/dashboards$/, dashboardsPage, "dashboards"],
    [/^#\/dashboards\/([a-z0-9]+)$/, dashboardPage, "dashboards"],
  ];
  async function route() {
    timers.forEach(clearInterval); timers = [];
    const hash = location.hash || "#/";
    for (const [re, fn, nav] of routes) {
      const m = hash.match(re);
      if (!m) continue;
      document.querySelectorAll("header nav a").forEach(a => a.classList.toggle("active", a.dataset.nav === nav));
      main.dataset.page = nav;
      main.removeAttribute("data-ready");
      try { await fn(...m.slice(1).map(x => x === undefined ? x : decodeURIComponent(x))); }
      catch (e) { set(errorBox(e)); }
      main.setAttribute("data-ready", "1");
      return;
    }
    set(h("p", {}, "No such page."));
  }
  window.addEventListener("hashchange", route);

  // ---- overview ---------------------------------------------------------------------------------------
  async function overview() {
    const box = h("div");
    set(h("h1", {}, "Overview"), box);
    async function load() {
      let o;
      try { o = await api("/overview"); } catch (e) { box.textContent = ""; box.append(errorBox(e)); return; }
      const totalIn = o.topics.reduce((a, t) => a + t.in_per_sec, 0), totalCommit = o.tables.reduce((a, t) => a + t.rows_per_sec, 0);
      const dead = o.topics.reduce((a, t) => a + Object.values(t.rejected || {}).reduce((x, y) => x + y, 0), 0);
      const lag = o.topics.reduce((a, t) => a + t.partitions.reduce((x, p) => x + p.lag, 0), 0);
      const restarts = Object.values(o.restarts || {}).reduce((a, b) => a + b, 0);
      const kpi = (label, v, id) => h("div", { class: "kpi", id }, h("span", { class: "muted" }, label), h("b", {}, v));
      box.textContent = "";
      box.append(h("div", { class: "kpis" }, kpi("records in", rate(totalIn), "kpi-in"), kpi("rows committed", rate(totalCommit), "kpi-commit"),
        kpi("tables", count(o.tables.length), "kpi-tables"), kpi("consumer lag", count(lag), "kpi-lag"), kpi("dead letters", count(dead), "kpi-dead"),
        kpi("processor restarts (this instance)", count(restarts), "kpi-restarts")));
      (o.errors || []).forEach(e => box.append(h("div", { class: "error" }, e)));
      const topicRank = t => -(t.partitions.reduce((x, p) => x + p.lag, 0) * 1e6 + Object.values(t.rejected || {}).reduce((x, y) => x + y, 0) + t.in_per_sec);
      const topics = o.topics.slice().sort((a, b) => topicRank(a) - topicRank(b) || a.name.localeCompare(b.name));
      const tables = o.tables.slice().sort((a, b) => b.rows_per_sec - a.rows_per_sec || Date.parse(b.last_commit) - Date.parse(a.last_commit) || a.name.localeCompare(b.name));
      box.append(h("h2", {}, "Source topics ", h("span", { class: "muted" }, "(most lag and dead letters first)")), capped(topics, 50, rows => grid([
        { label: "topic", get: t => t.name },
        { label: "table", get: t => h("a", { href: "#/tables/" + encodeURIComponent(t.table) }, t.table) },
        { label: "in", num: true, get: t => rate(t.in_per_sec) },
        { label: "accepted", num: true, get: t => count(t.accepted) },
        { label: "dead letters by reason", get: t => Object.keys(t.rejected || {}).length ? h("a", { href: "#/deadletters/" + encodeURIComponent(t.name) }, Object.entries(t.rejected).map(([k, v]) => h("span", { class: "pill bad" }, k + " " + count(v)))) : h("span", { class: "muted" }, "none") },
        { label: "lag by partition", get: t => t.partitions.length ? t.partitions.map(p => h("span", { class: "pill" + (p.lag > 0 ? " warn" : ""), title: `end ${p.end}, committed ${p.committed}` }, p.partition + ": " + count(p.lag))) : h("span", { class: "muted" }, "—") },
      ], rows, { cls: "topics" })));
      box.append(h("h2", {}, "Tables ", h("span", { class: "muted" }, "(busiest and freshest first)")), capped(tables, 50, rows => grid([
        { label: "table", get: t => h("a", { href: "#/tables/" + encodeURIComponent(t.name) }, t.name) },
        { label: "committed", num: true, get: t => rate(t.rows_per_sec) },
        { label: "rows", num: true, get: t => count(t.rows) },
        { label: "files", num: true, get: t => count(t.files) },
        { label: "bytes", num: true, get: t => bytes(t.bytes) },
        { label: "freshness (newest commit)", get: t => age(t.last_commit, o.now) },
      ], rows, { cls: "tables" })));
      if (Object.keys(o.restarts || {}).length) {
        box.append(h("h2", {}, "Processor restarts in this instance"), grid([{ label: "processor", get: r => r[0] }, { label: "restarts", num: true, get: r => count(r[1]) }], Object.entries(o.restarts)));
      }
      box.append(h("p", { class: "muted" }, `Read ${age(o.taken, o.now)} in ${o.took_ms} ms from the warehouse's manifests and Kafka; refreshed every few seconds.`));
    }
    await load();
    every(3000, load);
  }

  // ---- tables -----------------------------------------------------------------------------------------
  async function tablesPage() {
    const r = await api("/tables");
    const filter = h("input", { type: "search", placeholder: "filter tables", id: "table-filter" });
    const box = h("div");
    const draw = () => {
      const f = filter.value.toLowerCase();
      const rows = r.tables.filter(t => t.name.includes(f));
      box.textContent = "";
      box.append(capped(rows, 200, rows => grid([
        { label: "table", get: t => h("a", { href: "#/tables/" + encodeURIComponent(t.name) }, t.name) },
        { label: "topic", get: t => t.topic || "" },
        { label: "partitions", num: true, get: t => count(t.partitions) },
        { label: "files", num: true, get: t => count(t.files) },
        { label: "rows", num: true, get: t => count(t.rows) },
        { label: "bytes", num: true, get: t => bytes(t.bytes) },
        { label: "schema versions", num: true, get: t => t.versions },
        { label: "newest commit", get: t => age(t.last_commit) },
      ], rows, { cls: "tables" })));
    };
    filter.addEventListener("input", draw);
    set(h("h1", {}, "Tables ", h("span", { class: "muted" }, `(${r.tables.length})`)), h("div", { class: "toolbar" }, filter), box);
    draw();
  }

  function fieldDiff(a, b) {
    const left = new Map(a.fields.map(f => [f.name, f])), right = new Map(b.fields.map(f => [f.name, f]));
    const sig = f => f.type + (f.nullable ? " (nullable)" : "");
    const side = (fields, other, gone) => grid([{ label: "field", get: f => f.name }, { label: "type", get: f => sig(f) }],
      fields.map(f => Object.assign({ _attrs: { class: !other.has(f.name) ? gone : (sig(other.get(f.name)) !== sig(f) ? "changed" : "") } }, f)));
    return h("div", { class: "diff", id: "schema-diff" },
      h("div", {}, h("b", {}, "schema id " + a.id), side(a.fields, right, "removed")),
      h("div", {}, h("b", {}, "schema id " + b.id), side(b.fields, left, "added")));
  }

  async function tablePage(name) {
    const r = await api("/tables/" + encodeURIComponent(name));
    const t = r.table;
    const parts = h("div");
    parts.append(grid([
      { label: "partition", get: p => p.path || "(unpartitioned)" },
      { label: "files", num: true, get: p => count(p.files) },
      { label: "rows", num: true, get: p => count(p.rows) },
      { label: "bytes", num: true, get: p => bytes(p.bytes) },
      { label: "schema ids", get: p => (p.schema_ids || []).join(", ") },
      { label: "complete", get: p => p.complete ? h("span", { class: "pill good" }, "complete") : h("span", { class: "pill" }, "open") },
      { label: "newest commit", get: p => age(p.last_commit) },
    ], t.partitions.slice().reverse(), { cls: "partitions" }));
    const versions = h("div", { class: "card" }, h("h2", {}, "Schema versions"));
    if (r.versions.length > 1) {
      const pick = (id, sel) => h("select", { id }, r.versions.map((v, i) => h("option", { value: i, selected: i === sel }, "schema id " + v.id)));
      const a = pick("diff-left", r.versions.length - 2), b = pick("diff-right", r.versions.length - 1);
      const out = h("div");
      const show = () => { out.textContent = ""; out.append(fieldDiff(r.versions[a.value], r.versions[b.value])); };
      a.addEventListener("change", show); b.addEventListener("change", show);
      versions.append(h("div", { class: "toolbar" }, "compare", a, "with", b), out);
      show();
    } else if (r.versions.length === 1) {
      versions.append(h("p", { class: "muted" }, "One schema version (id " + r.versions[0].id + ")."));
    }
    r.versions.forEach(v => versions.append(h("details", {}, h("summary", {}, "schema id " + v.id + (v.error ? " — " + v.error : "")), h("pre", {}, v.schema ? JSON.stringify(JSON.parse(v.schema), null, 2) : ""))));
    const newest = h("div", { class: "card" }, h("h2", {}, "Newest rows"));
    if (r.newest) newest.append(resultTable(r.newest)); else newest.append(h("p", { class: "muted" }, r.newest_error || "—"));
    set(h("h1", {}, "Table ", h("span", { id: "table-name" }, t.name)),
      h("div", { class: "kpis" },
        h("div", { class: "kpi", id: "table-rows" }, h("span", { class: "muted" }, "rows"), h("b", {}, count(t.rows))),
        h("div", { class: "kpi" }, h("span", { class: "muted" }, "files"), h("b", {}, count(t.files))),
        h("div", { class: "kpi" }, h("span", { class: "muted" }, "bytes"), h("b", {}, bytes(t.bytes))),
        h("div", { class: "kpi" }, h("span", { class: "muted" }, "partitions"), h("b", {}, count(t.partitions.length))),
        h("div", { class: "kpi" }, h("span", { class: "muted" }, "newest commit"), h("b", {}, age(t.last_commit)))),
      h("p", { class: "muted" }, "topic " + (t.topic || "?") + " · generation " + t.generation + " · " + t.location + " · ",
        h("a", { href: "#/sql", onclick: () => { sessionStorage.setItem("mp-sql", `SELECT * FROM ${t.name} LIMIT 100`); } }, "query it")),
      h("div", { class: "row" },
        h("div", { class: "card" }, h("h2", {}, "Columns"), grid([{ label: "column", get: c => c.name }, { label: "type", get: c => c.type + (c.nullable ? " (nullable)" : "") }, { label: "", get: c => c.partition ? h("span", { class: "pill" }, "partition") : (c.doc || "") }], r.columns, { cls: "columns" })),
        versions),
      h("div", { class: "card" }, h("h2", {}, "Partitions ", h("span", { class: "muted" }, `(${t.partitions.length})`)), h("div", { class: "scroll" }, parts)),
      newest);
  }

  // ---- registry ---------------------------------------------------------------------------------------
  async function registryPage() {
    const [subjects, global] = await Promise.all([api("/subjects"), reg("/config").catch(() => ({}))]);
    const rows = subjects.map(s => ({ s: s.subject, versions: s.versions, ids: s.ids, level: s.compatibility }));
    set(h("h1", {}, "Schema registry"),
      h("p", { class: "muted" }, "Global compatibility level: ", h("b", { id: "global-level" }, global.compatibilityLevel || global.compatibility || "?"), " · the Confluent Schema Registry API, also on its own port."),
      grid([
        { label: "subject", get: r => h("a", { href: "#/registry/" + encodeURIComponent(r.s) }, r.s) },
        { label: "versions", get: r => r.versions.join(", ") },
        { label: "schema ids", get: r => r.ids.join(", ") },
        { label: "compatibility", get: r => r.level },
      ], rows, { cls: "subjects" }),
      registerForm(""));
  }

  function registerForm(subject) {
    const subj = h("input", { type: "text", value: subject, placeholder: "subject (e.g. connect_test-value)", id: "reg-subject", size: 40 });
    const text = h("textarea", { rows: 10, id: "reg-schema", placeholder: '{"type": "record", "name": "User", "fields": [...]}' });
    const out = h("div", { id: "reg-result" });
    const run = async (check) => {
      out.textContent = "";
      const s = encodeURIComponent(subj.value.trim());
      try {
        if (check) {
          const r = await reg(`/compatibility/subjects/${s}/versions/latest?verbose=true`, { method: "POST", body: { schema: text.value } });
          out.append(r.is_compatible ? h("p", { class: "ok" }, "Compatible with the latest version.") : h("div", { class: "error" }, "Not compatible:\n" + (r.messages || []).join("\n")));
        } else {
          const r = await reg(`/subjects/${s}/versions`, { method: "POST", body: { schema: text.value } });
          out.append(h("p", { class: "ok" }, "Registered: schema id " + r.id + "."));
        }
      } catch (e) { out.append(errorBox(e)); }
    };
    return h("div", { class: "card" }, h("h2", {}, "Check or register a schema"), h("div", { class: "toolbar" }, subj), text,
      h("div", { class: "toolbar" }, h("button", { onclick: () => run(true), id: "reg-check" }, "Check compatibility"), h("button", { class: "primary", onclick: () => run(false), id: "reg-register" }, "Register")), out);
  }

  async function subjectPage(subject) {
    const s = encodeURIComponent(subject);
    const versions = await reg(`/subjects/${s}/versions`);
    const cfg = await reg(`/config/${s}?defaultToGlobal=true`).catch(() => ({}));
    const all = await Promise.all(versions.map(v => reg(`/subjects/${s}/versions/${v}`)));
    set(h("h1", {}, "Subject ", subject), h("p", { class: "muted" }, "compatibility " + (cfg.compatibilityLevel || "?")),
      grid([{ label: "version", get: v => v.version }, { label: "schema id", get: v => v.id }, { label: "schema", get: v => h("pre", {}, JSON.stringify(JSON.parse(v.schema), null, 2)) }], all.reverse()),
      registerForm(subject));
  }

  // ---- dead letters -----------------------------------------------------------------------------------
  async function deadLettersPage() {
    const topics = await api("/deadletters");
    set(h("h1", {}, "Dead letters"), grid([
      { label: "source topic", get: t => h("a", { href: "#/deadletters/" + encodeURIComponent(t.topic) }, t.topic) },
      { label: "dead-letter topic", get: t => t.dead_letters },
      { label: "dead letters", num: true, get: t => count(t.rejected) },
      { label: "by reason", get: t => Object.entries(t.reasons).map(([k, v]) => h("span", { class: "pill bad" }, k + " " + count(v))) },
    ], topics, { cls: "dlq-topics" }));
  }

  async function deadLetterTopic(topic) {
    const d = await api("/deadletters/" + encodeURIComponent(topic) + "?n=100");
    const picked = new Set();
    const out = h("div", { id: "redrive-result" });
    const btn = h("button", { class: "primary", id: "redrive", disabled: true }, "Re-drive selected");
    btn.addEventListener("click", async () => {
      out.textContent = "";
      btn.disabled = true;
      try {
        const r = await api("/deadletters/" + encodeURIComponent(topic) + "/redrive", { method: "POST", body: { records: [...picked].map(k => { const [p, o] = k.split("/"); return { partition: +p, offset: +o }; }) } });
        const n = r.results.filter(x => x.status === "redriven").length;
        out.append(h("p", { class: "ok" }, `Re-driven: ${n} of ${r.results.length}.`), grid([{ label: "record", get: x => x.partition + "/" + x.offset }, { label: "status", get: x => x.status }, { label: "to", get: x => x.to ? x.to + " @ " + x.to_offset : "" }, { label: "error", get: x => x.error || "" }], r.results));
      } catch (e) { out.append(errorBox(e)); btn.disabled = false; }
    });
    const rows = d.letters.map(l => Object.assign({ _attrs: { "data-offset": l.partition + "/" + l.offset } }, l));
    set(h("h1", {}, "Dead letters of ", topic),
      h("p", { class: "muted" }, `${count(d.records)} records in ${d.topic}; the newest ${d.letters.length} below.`),
      h("div", { class: "card" }, h("h2", {}, "By reason"), Object.keys(d.reasons).length ? Object.entries(d.reasons).map(([k, v]) => h("span", { class: "pill bad" }, k + " " + count(v))) : h("span", { class: "muted" }, "none counted")),
      h("div", { class: "toolbar" }, btn, out),
      grid([
        { label: "", get: l => l.redriven ? h("span", { class: "pill good", title: "to " + l.redriven.to + " @ " + l.redriven.to_offset }, "re-driven") : h("input", { type: "checkbox", class: "pick", onchange: e => { const k = l.partition + "/" + l.offset; e.target.checked ? picked.add(k) : picked.delete(k); btn.disabled = !picked.size; } }) },
        { label: "record", get: l => l.partition + "/" + l.offset },
        { label: "time", get: l => l.timestamp.replace("T", " ").replace(/\..*$/, "") },
        { label: "reason", get: l => h("div", {}, h("span", { class: "pill bad" }, l.code), " ", l.reason) },
        { label: "value", get: l => h("div", {}, l.decoded ? h("pre", { class: "decoded" }, l.decoded) : null, l.decode_error ? h("div", { class: "muted" }, (l.schema_id ? "schema id " + l.schema_id + ": " : "") + l.decode_error) : null, l.hex ? h("pre", { class: "muted" }, l.hex) : null) },
        { label: "headers", get: l => h("details", {}, h("summary", {}, Object.keys(l.headers).length + " headers"), h("pre", {}, Object.entries(l.headers).map(([k, v]) => k + ": " + v).join("\n"))) },
      ], rows, { cls: "letters" }));
  }

  // ---- SQL --------------------------------------------------------------------------------------------
  let completions = null;
  async function loadCompletions() { if (!completions) completions = await api("/completions").catch(() => ({})); return completions; }

  function attachCompletion(ta) {
    const box = h("div", { class: "complete", id: "completions" });
    box.hidden = true;
    let items = [], sel = 0, start = 0;
    const word = () => { const upto = ta.value.slice(0, ta.selectionStart); const m = upto.match(/[A-Za-z_][A-Za-z0-9_]*$/); return m ? [m[0], upto.length - m[0].length] : ["", ta.selectionStart]; };
    function candidates(prefix) {
      const c = completions || {};
      const text = ta.value.toLowerCase(), out = [];
      const p = prefix.toLowerCase();
      for (const t of Object.keys(c)) if (t.startsWith(p)) out.push([t, "table"]);
      const named = Object.keys(c).filter(t => new RegExp("\\b" + t + "\\b").test(text));
      for (const t of named.length ? named : Object.keys(c)) for (const col of c[t]) if (col.toLowerCase().startsWith(p)) out.push([col, t]);
      for (const k of ["SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "LIMIT", "COUNT(*)", "DISTINCT", "HAVING", "JOIN"]) if (k.toLowerCase().startsWith(p)) out.push([k, "keyword"]);
      const seen = new Set();
      return out.filter(([n]) => n.toLowerCase() !== p && !seen.has(n) && seen.add(n)).slice(0, 30);
    }
    function show() {
      const [w, s] = word();
      if (w.length < 1) { box.hidden = true; return; }
      items = candidates(w); start = s; sel = 0;
      if (!items.length) { box.hidden = true; return; }
      box.textContent = "";
      items.forEach(([n, k], i) => box.append(h("div", { class: i === sel ? "sel" : "", onmousedown: e => { e.preventDefault(); sel = i; accept(); } }, n, h("small", {}, k))));
      box.hidden = false;
      box.style.left = "8px"; box.style.top = (ta.offsetHeight + 2) + "px";
    }
    function accept() {
      const [n] = items[sel];
      ta.value = ta.value.slice(0, start) + n + ta.value.slice(ta.selectionStart);
      ta.selectionStart = ta.selectionEnd = start + n.length;
      box.hidden = true; ta.focus();
    }
    ta.addEventListener("input", show);
    ta.addEventListener("blur", () => { box.hidden = true; });
    ta.addEventListener("keydown", e => {
      if (box.hidden) return;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") { e.preventDefault(); sel = (sel + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length; [...box.children].forEach((c, i) => c.className = i === sel ? "sel" : ""); }
      else if (e.key === "Tab" || (e.key === "Enter" && !e.ctrlKey && !e.metaKey)) { e.preventDefault(); accept(); }
      else if (e.key === "Escape") box.hidden = true;
    });
    return box;
  }

  function chartControls(res, spec, onChange) {
    const opt = (v, label, on) => h("option", { value: v, selected: on }, label);
    const type = h("select", { id: "chart-type" }, opt("", "no chart", !spec.type), ["bar", "line", "area", "scatter", "pie"].map(t => opt(t, t, spec.type === t)));
    const x = h("select", { id: "chart-x" }, res.columns.map(c => opt(c, c, spec.x === c)));
    const ys = h("span", { id: "chart-y" }, res.columns.map(c => h("label", {}, h("input", { type: "checkbox", value: c, checked: (spec.y || []).includes(c) }), c, " ")));
    const series = h("select", { id: "chart-series" }, opt("", "(none)", !spec.series), res.columns.map(c => opt(c, c, spec.series === c)));
    const read = () => ({ type: type.value, x: x.value, y: [...ys.querySelectorAll("input:checked")].map(i => i.value), series: series.value || undefined });
    [type, x, series].forEach(s => s.addEventListener("change", () => onChange(read())));
    ys.addEventListener("change", () => onChange(read()));
    return { el: h("div", { class: "toolbar" }, "chart", type, "x", x, "y", ys, "series", series), read };
  }

  function defaultSpec(res) {
    const numeric = res.types.map(t => /INT|DECIMAL|DOUBLE|FLOAT|REAL|NUMERIC/i.test(t || ""));
    const y = res.columns.filter((c, i) => numeric[i]);
    const x = res.columns.find((c, i) => !numeric[i]) || res.columns[0];
    return { x, y: y.length ? [y[0]] : [], series: undefined };
  }

  async function sqlPage(savedID) {
    loadCompletions();
    await infoReady;
    let saved = null;
    if (savedID) saved = await api("/queries/" + savedID);
    const engines = info.engines.length ? info.engines : ["duckdb"];
    const ta = h("textarea", { rows: 9, id: "sql", spellcheck: "false" });
    ta.value = saved ? saved.sql : (sessionStorage.getItem("mp-sql") || "SELECT name, lastname FROM connect_test ORDER BY name");
    sessionStorage.removeItem("mp-sql");
    const engine = h("select", { id: "engine" }, engines.map(e => h("option", { value: e, selected: saved && saved.engine === e }, e)));
    const runBtn = h("button", { class: "primary", id: "run" }, "Run");
    const cancelBtn = h("button", { id: "cancel", disabled: true }, "Cancel");
    const csvBtn = h("button", { id: "csv", disabled: true }, "Download CSV");
    const status = h("span", { class: "muted", id: "status" });
    const out = h("div", { id: "result" });
    const chartBox = h("div", { class: "chartbox", id: "chart" });
    const chartBar = h("div");
    const name = h("input", { type: "text", id: "query-name", placeholder: "query name", value: saved ? saved.name : "" });
    const saveBtn = h("button", { id: "save-query", disabled: true }, saved ? "Save" : "Save query");
    const dashSel = h("select", { id: "dashboard-pick" }, h("option", { value: "" }, "new dashboard…"));
    const dashName = h("input", { type: "text", id: "dashboard-name", placeholder: "new dashboard name" });
    const dashBtn = h("button", { id: "add-to-dashboard", disabled: true }, "Add to dashboard");
    const saveOut = h("span", { id: "save-result" });
    api("/dashboards").then(ds => ds.forEach(d => dashSel.append(h("option", { value: d.id }, d.name)))).catch(() => {});
    dashSel.addEventListener("change", () => { dashName.hidden = !!dashSel.value; });
    let ctrl = null, last = null, spec = saved && saved.chart ? saved.chart : null, savedQuery = saved;

    function drawChart() {
      chartBox.textContent = "";
      if (!last || !spec || !spec.type) { chartBox.hidden = true; return; }
      chartBox.hidden = false;
      window.MPChart.draw(chartBox, last, spec);
    }
    async function run() {
      if (ctrl) ctrl.abort();
      document.getElementById("completions").hidden = true;
      ctrl = new AbortController();
      out.textContent = ""; status.textContent = "running…";
      runBtn.disabled = true; cancelBtn.disabled = false;
      const t0 = performance.now();
      try {
        last = await api("/sql", { method: "POST", body: { sql: ta.value, engine: engine.value }, signal: ctrl.signal });
        const total = performance.now() - t0;
        status.textContent = `${last.rows.length} rows${last.truncated ? " (truncated: more were left)" : ""} · ${last.engine} ${last.took_ms.toFixed(1)} ms · page ${total.toFixed(0)} ms`;
        out.append(resultTable(last));
        const fits = spec && last.columns.includes(spec.x) && (spec.y || []).length && spec.y.every(c => last.columns.includes(c)) && (!spec.series || last.columns.includes(spec.series));
        if (!fits) spec = Object.assign(defaultSpec(last), { type: spec ? spec.type : "" });
        chartBar.textContent = "";
        chartBar.append(chartControls(last, spec, s => { spec = s; drawChart(); }).el);
        drawChart();
        csvBtn.disabled = false; saveBtn.disabled = false; dashBtn.disabled = false;
      } catch (e) {
        status.textContent = "";
        out.append(e.name === "AbortError" ? h("div", { class: "error" }, "Cancelled.") : errorBox(e));
      } finally { runBtn.disabled = false; cancelBtn.disabled = true; ctrl = null; }
    }
    runBtn.addEventListener("click", run);
    cancelBtn.addEventListener("click", () => ctrl && ctrl.abort());
    ta.addEventListener("keydown", e => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } });
    csvBtn.addEventListener("click", async () => {
      try {
        const text = await api("/sql?format=csv", { method: "POST", body: { sql: ta.value, engine: engine.value }, raw: true });
        const a = h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: "result.csv" });
        document.body.append(a); a.click(); a.remove();
      } catch (e) { out.prepend(errorBox(e)); }
    });
    async function save() {
      const body = { name: name.value.trim() || "untitled", sql: ta.value, engine: engine.value, chart: spec && spec.type ? spec : { type: "table" } };
      savedQuery = savedQuery ? await api("/queries/" + savedQuery.id, { method: "PUT", body }) : await api("/queries", { method: "POST", body });
      return savedQuery;
    }
    saveBtn.addEventListener("click", async () => {
      saveOut.textContent = "";
      try { const q = await save(); saveOut.append(h("span", { class: "ok" }, "saved as " + q.name + " ")); history.replaceState(null, "", "#/sql?q=" + q.id); }
      catch (e) { saveOut.append(errorBox(e)); }
    });
    dashBtn.addEventListener("click", async () => {
      saveOut.textContent = "";
      try {
        const q = await save();
        let d;
        if (dashSel.value) d = (await api("/dashboards/" + dashSel.value)).dashboard;
        else d = { name: dashName.value.trim() || "untitled dashboard", refresh: 0, items: [] };
        const y = d.items.reduce((m, it) => Math.max(m, it.y + it.h), 0);
        const n = d.items.length;
        d.items.push({ query: q.id, x: (n % 2) * 6, y: n % 2 ? y - 5 : y, w: 6, h: 5 });
        d = d.id ? await api("/dashboards/" + d.id, { method: "PUT", body: d }) : await api("/dashboards", { method: "POST", body: d });
        saveOut.append(h("span", { class: "ok" }, "added to "), h("a", { href: "#/dashboards/" + d.id, id: "dashboard-link" }, d.name));
      } catch (e) { saveOut.append(errorBox(e)); }
    });
    const editor = h("div", { class: "editor" }, ta);
    editor.append(attachCompletion(ta));
    set(h("h1", {}, saved ? "Query: " + saved.name : "SQL"),
      h("p", { class: "muted" }, "Read-only: one SELECT at a time over every table of the warehouse; Ctrl+Enter runs; Tab completes table and column names."),
      editor,
      h("div", { class: "toolbar" }, "engine", engine, runBtn, cancelBtn, csvBtn, status),
      h("div", { class: "toolbar" }, name, saveBtn, "·", dashSel, dashName, dashBtn, saveOut),
      chartBar, chartBox, out);
    chartBox.hidden = true;
    if (saved) await run();
  }

  // ---- dashboards -------------------------------------------------------------------------------------
  async function dashboardsPage() {
    const [ds, qs] = await Promise.all([api("/dashboards"), api("/queries")]);
    const name = h("input", { type: "text", placeholder: "new dashboard name", id: "new-dashboard" });
    const out = h("span");
    const create = h("button", { class: "primary", onclick: async () => {
      try { const d = await api("/dashboards", { method: "POST", body: { name: name.value, items: [] } }); location.hash = "#/dashboards/" + d.id; }
      catch (e) { out.textContent = ""; out.append(errorBox(e)); }
    } }, "Create");
    set(h("h1", {}, "Dashboards"), h("div", { class: "toolbar" }, name, create, out),
      grid([{ label: "dashboard", get: d => h("a", { href: "#/dashboards/" + d.id }, d.name) }, { label: "tiles", num: true, get: d => d.items.length }, { label: "refresh", get: d => d.refresh ? d.refresh + " s" : "manual" }, { label: "updated", get: d => age(d.updated) + (d.by ? " by " + d.by : "") }], ds, { cls: "dashboards" }),
      h("h2", {}, "Saved queries"),
      grid([{ label: "query", get: q => h("a", { href: "#/sql?q=" + q.id }, q.name) }, { label: "chart", get: q => q.chart ? q.chart.type : "" }, { label: "sql", get: q => h("pre", {}, q.sql.length > 200 ? q.sql.slice(0, 200) + "…" : q.sql) }, { label: "updated", get: q => age(q.updated) + (q.by ? " by " + q.by : "") }], qs, { cls: "queries" }));
  }

  async function dashboardPage(id) {
    const r = await api("/dashboards/" + id);
    const d = r.dashboard;
    const board = h("div", { class: "dash", id: "dashboard" });
    const stamp = h("span", { class: "muted", id: "refreshed" });
    let editing = false;
    const place = (tile, it) => { tile.style.gridColumn = `${it.x + 1} / span ${it.w}`; tile.style.gridRow = `${it.y + 1} / span ${it.h}`; };
    const tiles = d.items.map(it => {
      const q = r.queries[it.query];
      const body = h("div", { class: "body" });
      const tile = h("div", { class: "tile", "data-query": it.query });
      const move = (dx, dy, dw, dh) => {
        it.w = Math.min(12, Math.max(2, it.w + dw)); it.h = Math.min(12, Math.max(2, it.h + dh));
        it.x = Math.min(12 - it.w, Math.max(0, it.x + dx)); it.y = Math.max(0, it.y + dy);
        place(tile, it);
      };
      const tools = h("span", { class: "tile-tools" },
        h("button", { title: "left", onclick: () => move(-1, 0, 0, 0) }, "◀"), h("button", { title: "right", onclick: () => move(1, 0, 0, 0) }, "▶"),
        h("button", { title: "up", onclick: () => move(0, -1, 0, 0) }, "▲"), h("button", { title: "down", onclick: () => move(0, 1, 0, 0) }, "▼"),
        h("button", { title: "narrower", onclick: () => move(0, 0, -1, 0) }, "−w"), h("button", { title: "wider", onclick: () => move(0, 0, 1, 0) }, "+w"),
        h("button", { title: "lower", onclick: () => move(0, 0, 0, -1) }, "−h"), h("button", { title: "taller", onclick: () => move(0, 0, 0, 1) }, "+h"),
        h("button", { title: "remove the tile", class: "remove-tile", onclick: () => { d.items = d.items.filter(x => x !== it); tile.remove(); } }, "✕"));
      tools.hidden = true;
      tile.append(h("h3", {}, q ? h("a", { href: "#/sql?q=" + q.id }, q.name) : "missing query " + it.query, tools), body);
      place(tile, it);
      board.append(tile);
      return { it, q, body, tools };
    });
    const editBtn = h("button", { id: "edit-layout" }, "Edit layout");
    editBtn.addEventListener("click", async () => {
      if (!editing) { editing = true; editBtn.textContent = "Save layout"; tiles.forEach(t => t.tools.hidden = false); return; }
      try { await api("/dashboards/" + d.id, { method: "PUT", body: d }); editing = false; editBtn.textContent = "Edit layout"; tiles.forEach(t => t.tools.hidden = true); stamp.textContent = "layout saved"; }
      catch (e) { stamp.textContent = e.message; }
    });
    async function refresh() {
      await Promise.all(tiles.map(async ({ q, body }) => {
        if (!q) return;
        try {
          const res = await api("/sql", { method: "POST", body: { sql: q.sql, engine: q.engine || undefined, max_rows: 5000 } });
          body.textContent = "";
          if (q.chart && q.chart.type && q.chart.type !== "table") { const c = h("div", { class: "chartbox" }); c.style.height = "100%"; body.append(c); window.MPChart.draw(c, res, q.chart); }
          else body.append(resultTable(res));
        } catch (e) { body.textContent = ""; body.append(errorBox(e)); }
      }));
      stamp.textContent = "refreshed " + new Date().toLocaleTimeString();
    }
    const every_ = h("select", { id: "refresh" }, [0, 10, 30, 60, 300, 900].map(s => h("option", { value: s, selected: (d.refresh || 0) === s }, s ? "every " + (s < 60 ? s + " s" : s / 60 + " min") : "manual")));
    every_.addEventListener("change", async () => {
      d.refresh = +every_.value;
      try { await api("/dashboards/" + d.id, { method: "PUT", body: d }); route(); } catch (e) { stamp.textContent = e.message; }
    });
    const del = h("button", { onclick: async () => { if (confirm("Delete dashboard " + d.name + "?")) { await api("/dashboards/" + d.id, { method: "DELETE" }); location.hash = "#/dashboards"; } } }, "Delete");
    set(h("h1", {}, "Dashboard: ", h("span", { id: "dashboard-title" }, d.name)),
      h("div", { class: "toolbar" }, h("button", { onclick: refresh }, "Refresh"), "refresh", every_, editBtn, stamp, del,
        h("span", { class: "muted" }, "share: " + location.origin + "/console/#/dashboards/" + d.id)),
      d.items.length ? board : h("p", { class: "muted" }, "No tiles yet: save a query from the SQL page and add it here."));
    await refresh();
    if (d.refresh) every(d.refresh * 1000, refresh);
  }

  // ---- start ------------------------------------------------------------------------------------------
  const infoReady = api("/info").then(i => { info = i; document.getElementById("who").textContent = (i.user ? i.user + " · " : "") + "engines: " + i.engines.join(", "); })
    .catch(() => {});
  route();
})();
