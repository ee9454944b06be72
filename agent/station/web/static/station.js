// cvedge operator station: the live view. It polls /api/state and draws each agent's
// cameras; a camera's live picture (an MJPEG stream) is open only while its card is on the
// screen and the page is visible, so a camera nobody looks at costs nothing.
"use strict";

const POLL_MS = 2000;
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

// cards keeps each camera's card between polls, so its live picture is not reopened.
const cards = new Map();
let visibleCards = new Set();

const observer = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (e.isIntersecting) visibleCards.add(e.target); else visibleCards.delete(e.target);
    updatePicture(e.target);
  }
}) : null;

document.addEventListener("visibilitychange", () => { for (const c of cards.values()) updatePicture(c.root); });

function updatePicture(root) {
  const img = root.querySelector("img.live");
  if (!img) return;
  const want = !document.hidden && (!observer || visibleCards.has(root));
  if (want && !img.getAttribute("src")) {
    img.src = img.dataset.src;
  } else if (!want && img.getAttribute("src")) {
    img.removeAttribute("src"); // closes the stream
  }
}

function pill(text, cls) { return el("span", "pill " + (cls || ""), text); }

function health(agents) {
  const h = document.getElementById("health");
  h.replaceChildren();
  for (const a of agents) {
    const online = a.status.state === "online";
    h.append(pill(a.status.agent + ": " + a.status.state, online ? "ok" : "bad"));
    if (!a.stats) continue;
    const m = a.stats.mqtt;
    h.append(pill("broker: " + m.state, m.connected ? "ok" : "bad"));
    const sp = a.stats.spool;
    const spoolText = "spool: " + sp.messages + " waiting" + (sp.writable ? "" : " (" + (sp.error || "not writable") + ")");
    h.append(pill(spoolText, !sp.writable ? "bad" : (sp.messages > 0 ? "warn" : "ok")));
  }
}

function table(rows) {
  const t = el("table");
  for (const [k, v, cls] of rows) {
    const tr = el("tr");
    tr.append(el("td", cls, k), el("td", "n", String(v)));
    t.append(tr);
  }
  return t;
}

function cameraCard(agent, name) {
  const key = agent + "/" + name;
  let c = cards.get(key);
  if (c) return c;
  const root = el("article", "camera");
  root.dataset.camera = name;
  const head = el("div", "head");
  const title = el("h3", "", name), state = el("span", "pill"), fps = el("span", "fps");
  head.append(title, state, fps);
  const picture = el("div", "picture");
  const reason = el("div", "reason");
  const facts = el("div", "facts");
  root.append(head, picture, reason, facts);
  c = { root, state, fps, picture, reason, facts, live: null };
  cards.set(key, c);
  if (observer) observer.observe(root);
  return c;
}

function render(view) {
  const main = document.getElementById("agents");
  const agents = view.agents || [];
  health(agents);
  const seen = new Set();
  const sections = [];
  for (const a of agents) {
    const sec = el("section", "agent");
    sec.dataset.agent = a.status.agent;
    const h = el("h2", "", a.status.agent + " ");
    h.append(el("span", "state", a.status.state + (a.status.reason ? " (" + a.status.reason + ")" : "")));
    sec.append(h);
    const models = (a.status.models || []).map((m) => m.name + " " + (m.iteration || "") + " (" + m.format + ")");
    if (models.length) sec.append(el("div", "models", "Models: " + models.join(", ")));
    const grid = el("div", "cameras");
    const stats = new Map(((a.stats && a.stats.cameras) || []).map((s) => [s.name, s]));
    for (const cam of a.status.cameras || []) {
      const c = cameraCard(a.status.agent, cam.name);
      seen.add(a.status.agent + "/" + cam.name);
      const st = stats.get(cam.name);
      c.state.textContent = cam.state;
      c.state.className = "pill " + (cam.state === "online" ? "ok" : cam.state === "reconnecting" ? "warn" : "bad");
      c.fps.textContent = st ? st.fps.toFixed(1) + " fps" : "";
      c.reason.textContent = cam.reason || "";
      const live = (a.live || []).includes(cam.name);
      if (live !== c.live) {
        c.live = live;
        if (live) {
          const img = el("img", "live");
          img.alt = "camera " + cam.name + ", live, with the boxes the models found";
          img.dataset.src = "/api/cameras/" + encodeURIComponent(cam.name) + "/live";
          c.picture.replaceChildren(img);
          updatePicture(c.root);
        } else {
          c.picture.replaceChildren(el("span", "none", "no live picture from this station"));
        }
      }
      const counts = (a.counts || {})[cam.name];
      const left = el("div");
      left.append(el("h4", "", counts ? "Parts since " + new Date(counts.since).toLocaleString() : "Parts"));
      if (counts) {
        const rows = [["parts", counts.parts]];
        for (const [tag, n] of Object.entries(counts.tags || {}).sort()) rows.push([tag, n]);
        for (const [v, n] of Object.entries(counts.verdicts || {}).sort()) rows.push([v, n, "verdict-" + v]);
        left.append(table(rows));
      } else {
        left.append(el("span", "empty", "not counted (no tracking)"));
      }
      const right = el("div");
      right.append(el("h4", "", "Last decisions"));
      const ds = ((a.decisions || {})[cam.name] || []).slice(0, 6);
      if (ds.length) {
        right.append(table(ds.map((d) => [d.tagName + " " + Math.round(d.probability * 100) + "% (" + d.by + ")", d.verdict || "", d.verdict ? "verdict-" + d.verdict : ""])));
      } else {
        right.append(el("span", "empty", "none yet"));
      }
      c.facts.replaceChildren(left, right);
      grid.append(c.root);
    }
    sec.append(grid);
    sections.push(sec);
  }
  for (const [key, c] of cards) {
    if (!seen.has(key)) {
      const img = c.root.querySelector("img.live");
      if (img) img.removeAttribute("src");
      if (observer) observer.unobserve(c.root);
      cards.delete(key);
    }
  }
  if (sections.length) main.replaceChildren(...sections);
  else main.replaceChildren(el("p", "empty", "No agent to show yet."));
}

async function poll() {
  try {
    const r = await fetch("/api/state", { credentials: "same-origin", cache: "no-store" });
    if (r.status === 401) { location.href = "/login"; return; }
    if (r.ok) render(await r.json());
  } catch (e) {
    const h = document.getElementById("health");
    h.replaceChildren(pill("station unreachable", "bad"));
  }
  setTimeout(poll, POLL_MS);
}

poll();
