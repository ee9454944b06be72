// cvedge operator station: the confusion table of the review queue's answers. Predicted tags
// (rows) against the operators' answers (columns) over a period, the most confused pairs
// first, and per-tag totals. The samples reviewed are the doubtful ones the agents chose, so
// the table says which classes get confused, not how often the models are right.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  let hours = 24; // the period: the last so many hours, or "custom"

  function say(text, cls) {
    const m = $("message");
    m.textContent = text || "";
    m.className = "message " + (cls || "");
  }

  async function api(method, path) {
    const opts = { method, credentials: "same-origin", cache: "no-store", headers: {} };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    const r = await fetch(path, opts);
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent("/confusion"); throw new Error("sign in first"); }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { status: r.status, ok: r.ok, data: data || {} };
  }

  // datetime-local wants local time without a zone
  function localInput(d) {
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes());
  }

  function markPeriod() {
    for (const b of document.querySelectorAll(".period")) {
      b.classList.toggle("on", b.dataset.hours === String(hours));
    }
    $("custom").hidden = hours !== "custom";
  }

  for (const b of document.querySelectorAll(".period")) {
    b.addEventListener("click", () => {
      hours = b.dataset.hours === "custom" ? "custom" : Number(b.dataset.hours);
      if (hours === "custom" && !$("since").value) {
        const now = new Date();
        $("since").value = localInput(new Date(now.getTime() - 7 * 24 * 3600e3));
        $("until").value = localInput(now);
      }
      markPeriod();
      if (hours !== "custom") show();
    });
  }
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); show(); });

  async function facets() {
    try {
      const r = await api("GET", "/api/review?limit=1");
      if (!r.ok) return;
      for (const [list, values] of [["agents", r.data.agents], ["cameras", r.data.cameras]]) {
        $(list).replaceChildren(...(values || []).map((v) => { const o = el("option"); o.value = v; return o; }));
      }
    } catch (e) { /* the filters stay free text */ }
  }

  async function show() {
    const q = new URLSearchParams();
    let since, until;
    if (hours === "custom") {
      if ($("since").value) since = new Date($("since").value);
      if ($("until").value) until = new Date($("until").value);
      if ((since && isNaN(since)) || (until && isNaN(until))) { say("give the period's start and end as dates and times", "bad"); return; }
    } else {
      // up to now, with no upper bound: an "until" cut to the second would leave out the
      // answers given in the current second
      since = new Date(Date.now() - hours * 3600e3);
    }
    if (since) q.set("since", since.toISOString().replace(/\.\d+Z$/, "Z"));
    if (until) q.set("until", until.toISOString().replace(/\.\d+Z$/, "Z"));
    if ($("agent").value.trim()) q.set("agent", $("agent").value.trim());
    if ($("camera").value.trim()) q.set("camera", $("camera").value.trim());
    say("", "");
    try {
      const r = await api("GET", "/api/review/confusion?" + q);
      if (!r.ok) { say(r.data.error || ("the table could not be made (" + r.status + ")"), "bad"); return; }
      render(r.data, since, until);
    } catch (e) {
      say("the station cannot be reached: " + e.message, "bad");
    }
  }

  function render(c, since, until) {
    const span = (since ? since.toLocaleString() : "the start") + " to " + (until ? until.toLocaleString() : "now");
    let text = c.answers + " answer(s) from " + span + (c.agent ? ", agent " + c.agent : "") + (c.camera ? ", camera " + c.camera : "") + ".";
    if (c.badLines) text += " " + c.badLines + " line(s) of the answers log could not be read and were skipped.";
    $("summary").textContent = text;

    const pairs = $("pairs");
    pairs.replaceChildren();
    if (!c.confused.length) {
      pairs.append(row("td", ["No confusion in this period."]));
    } else {
      pairs.append(row("th", ["Predicted", "Answered", "Count"]));
      for (const p of c.confused.slice(0, 20)) {
        pairs.append(row("td", [p.predicted, p.answered, String(p.count)], [null, null, "n"]));
      }
    }

    const m = $("matrix");
    m.replaceChildren();
    const tags = c.tags || [];
    if (!tags.length) {
      m.append(row("td", ["No answers in this period."]));
    } else {
      let top = 1;
      for (const p of c.confused) top = Math.max(top, p.count);
      const head = el("tr");
      head.append(el("th", "corner", "predicted \\ answered"));
      for (const t of tags) head.append(el("th", "col", t));
      head.append(el("th", "col", "total"));
      m.append(head);
      for (const p of tags) {
        const tr = el("tr");
        tr.append(el("th", "rowhead", p));
        const r = (c.counts || {})[p] || {};
        let sum = 0;
        for (const a of tags) {
          const n = r[a] || 0;
          sum += n;
          let cls = "n";
          if (n && p === a) cls += " diag";
          else if (n) cls += " off heat" + Math.min(4, Math.ceil((n / top) * 4));
          const td = el("td", cls, n ? String(n) : "·");
          td.title = p + " answered " + a + ": " + n;
          tr.append(td);
        }
        tr.append(el("td", "n total", String(sum)));
        m.append(tr);
      }
      const foot = el("tr");
      foot.append(el("th", "rowhead", "total"));
      let all = 0;
      for (const a of tags) {
        let n = 0;
        for (const p of tags) n += ((c.counts || {})[p] || {})[a] || 0;
        all += n;
        foot.append(el("td", "n total", String(n)));
      }
      foot.append(el("td", "n total", String(all)));
      m.append(foot);
    }

    const tot = $("totals");
    tot.replaceChildren();
    if (c.totals.length) {
      tot.append(row("th", ["Tag", "Predicted", "Answered", "Right", "Right of predicted"]));
      for (const t of c.totals) {
        const share = t.predicted ? Math.round((t.right / t.predicted) * 100) + "%" : "–";
        tot.append(row("td", [t.tag, String(t.predicted), String(t.answered), String(t.right), share], [null, "n", "n", "n", "n"]));
      }
    }
  }

  function row(cell, values, classes) {
    const tr = el("tr");
    values.forEach((v, i) => tr.append(el(cell, (classes && classes[i]) || "", v)));
    return tr;
  }


  markPeriod();
  facets();
  show();
})();
