// ClawGuard operator console: polls /api/decisions, runs the try box on /api/try.
// Served from the binary; no external resources. Every value shown comes from the
// server already masked; text is inserted with textContent, never as HTML.
"use strict";

let lastId = 0;
const POLL_MS = 2000;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(d) {
  const tr = el("tr");
  tr.dataset.decision = d.decision;
  tr.dataset.id = d.id;
  tr.append(
    el("td", d.time.replace("T", " ").replace(/\.\d+/, ""), "mono"),
    el("td", d.user),
    el("td", d.destination, "mono"),
    el("td", d.method + " " + d.path, "mono"),
    el("td", d.decision, "decision " + d.decision),
    el("td", d.rules.join(", "), "mono rules"),
    el("td", d.previews.join(" "), "mono"),
  );
  if (d.reason) tr.title = d.reason;
  return tr;
}

function renderCounts(counts) {
  const box = document.getElementById("counts");
  box.replaceChildren();
  for (const [dim, values] of Object.entries(counts)) {
    const div = el("div");
    div.dataset.dimension = dim;
    div.append(el("h3", "by " + dim));
    const t = el("table");
    const entries = Object.entries(values).sort((a, b) => b[1] - a[1]).slice(0, 15);
    if (entries.length === 0) t.append(el("tr")).lastChild.append(el("td", "—", "muted"));
    for (const [name, n] of entries) {
      const tr = el("tr");
      tr.append(el("td", name, "mono"), el("td", n));
      t.append(tr);
    }
    div.append(t);
    box.append(div);
  }
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const r = await fetch("/api/decisions?after=" + lastId, { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const s = await r.json();
    const body = document.querySelector("#decisions tbody");
    for (const d of s.decisions) body.prepend(row(d));
    while (body.children.length > 200) body.lastChild.remove();
    lastId = Math.max(lastId, s.last_id);
    renderCounts(s.counts);
    status.textContent = "live · updated " + new Date().toLocaleTimeString();
  } catch (e) {
    status.textContent = "disconnected (" + e.message + "), retrying";
  }
  setTimeout(poll, POLL_MS);
}

async function loadConfig() {
  const r = await fetch("/api/config", { cache: "no-store" });
  if (!r.ok) return;
  const c = await r.json();
  const body = document.querySelector("#config tbody");
  body.replaceChildren();
  for (const [k, v] of Object.entries(c)) {
    const tr = el("tr");
    const shown = v === null ? "—" : Array.isArray(v) ? (v.join(", ") || "—") : String(v);
    tr.append(el("td", k), el("td", shown, "mono"));
    body.append(tr);
  }
}

async function tryText() {
  const out = document.getElementById("try-result");
  out.replaceChildren(el("p", "inspecting…", "muted"));
  const r = await fetch("/api/try?destination=" + encodeURIComponent(document.getElementById("try-dest").value), {
    method: "POST",
    headers: { "content-type": "text/plain; charset=utf-8", "x-clawguard-admin": "1" },
    body: document.getElementById("try-text").value,
  });
  const res = await r.json();
  out.replaceChildren();
  if (!r.ok) {
    out.append(el("p", res.error || ("HTTP " + r.status), "decision block"));
    return;
  }
  const verdict = el("p");
  verdict.append("decision: ", el("span", res.decision, "decision " + res.decision));
  verdict.id = "try-decision";
  out.append(verdict);
  if (res.error) out.append(el("p", res.error, "muted"));
  const t = el("table");
  t.id = "try-findings";
  t.append(el("tr"));
  t.lastChild.append(el("th", "rule"), el("th", "category"), el("th", "preview"), el("th", "outcome"));
  for (const f of res.findings) {
    const tr = el("tr");
    tr.dataset.rule = f.rule;
    tr.append(el("td", f.rule, "mono"), el("td", f.category), el("td", f.preview, "mono"), el("td", f.outcome));
    t.append(tr);
  }
  if (res.findings.length === 0) out.append(el("p", "nothing found", "muted"));
  else out.append(t);
  if (res.redacted !== null) {
    out.append(el("h3", "would be forwarded as"));
    out.append(el("pre", res.redacted));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("try-run").addEventListener("click", tryText);
  loadConfig();
  poll();
});
