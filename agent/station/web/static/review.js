// cvedge operator station: the review page. One pending sample at a time, large: the whole
// frame with the detection's box drawn over it, the crop, the models' tag; the operator
// confirms, corrects to another tag, draws the parts the detector missed, or marks a false
// detection, with the mouse, a finger or the keyboard (? lists the keys). The next sample
// shows as soon as an answer is saved.
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
  const user = document.body.dataset.user || "";
  const OPERATOR_KEY = "cvedge.operator";
  const FILTER_KEY = "cvedge.review.filters";
  const BATCH = 20;
  const MIN_BOX = 0.005; // a box smaller than this (of the frame) is a slip of the finger

  let items = [];          // pending samples not answered or skipped, newest first
  const skipped = new Set();
  let more = false;        // the queue has more than the list holds
  let current = null;      // the sample shown
  let busy = false;        // an answer is on its way
  let drawing = null;      // missed mode: {boxes: [], tag, drag}
  let loading = null;

  // ---- the operator's name and the filters, kept in the browser
  const opInput = $("operator");
  if (opInput) {
    opInput.value = localStorage.getItem(OPERATOR_KEY) || "";
    opInput.addEventListener("change", () => localStorage.setItem(OPERATOR_KEY, opInput.value.trim()));
  }
  const filters = { agent: $("f-agent"), camera: $("f-camera"), reason: $("f-reason") };
  let savedFilters = {};
  try { savedFilters = JSON.parse(sessionStorage.getItem(FILTER_KEY) || "{}"); } catch (e) { savedFilters = {}; }
  for (const [k, sel] of Object.entries(filters)) {
    sel.addEventListener("change", () => {
      const f = {};
      for (const [k2, s2] of Object.entries(filters)) f[k2] = s2.value;
      sessionStorage.setItem(FILTER_KEY, JSON.stringify(f));
      items = []; current = null;
      load(true);
    });
  }

  function setOptions(sel, values, want) {
    const keep = want !== undefined ? want : sel.value;
    const opts = [el("option", "", sel.dataset.all || "all")];
    opts[0].value = "";
    for (const v of values) {
      const o = el("option", "", v);
      o.value = v;
      opts.push(o);
    }
    if (keep && !values.includes(keep)) { const o = el("option", "", keep); o.value = keep; opts.push(o); }
    sel.replaceChildren(...opts);
    sel.value = keep || "";
  }

  // ---- messages
  function say(text, cls) {
    const m = $("message");
    m.textContent = text || "";
    m.className = "message " + (cls || "");
  }

  function setPending(n) {
    const b = $("nav-pending");
    if (b && typeof n === "number") b.textContent = String(n);
  }

  async function api(method, path, body) {
    const opts = { method, credentials: "same-origin", cache: "no-store", headers: {} };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent("/review"); throw new Error("sign in first"); }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { status: r.status, ok: r.ok, data: data || {} };
  }

  // ---- the list
  async function load(show) {
    if (loading) return loading;
    const q = new URLSearchParams();
    for (const [k, sel] of Object.entries(filters)) {
      const v = sel.value || savedFilters[k] || "";
      if (v) q.set(k, v);
    }
    q.set("limit", String(Math.min(1000, skipped.size + items.length + BATCH)));
    loading = (async () => {
      try {
        const r = await api("GET", "/api/review?" + q);
        if (!r.ok) { say(r.data.error || "the list could not be read (" + r.status + ")", "bad"); return; }
        for (const [k, sel] of Object.entries(filters)) {
          const values = r.data[k === "reason" ? "reasons" : k + "s"] || [];
          setOptions(sel, values, sel.value || savedFilters[k] || "");
        }
        savedFilters = {};
        setPending(r.data.stats.pending);
        more = r.data.more;
        const have = new Set(items.map((it) => it.id));
        for (const it of r.data.items) {
          if (!skipped.has(it.id) && !have.has(it.id) && (!current || it.id !== current.id)) items.push(it);
        }
        if (show && !current) next();
      } catch (e) {
        say("the station cannot be reached: " + e.message, "bad");
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  function next() {
    cancelDrawing();
    current = items.shift() || null;
    if (!current) {
      $("sample").hidden = true;
      $("empty").hidden = false;
      $("empty-why").textContent = skipped.size
        ? "You skipped " + skipped.size + " sample(s). Look again to see them."
        : "No sample waits for review" + (filters.agent.value || filters.camera.value || filters.reason.value ? " with these filters." : ".");
      return;
    }
    $("empty").hidden = true;
    $("sample").hidden = false;
    render(current);
    if (items.length < 5) load(false);
    if (items[0]) prefetch(items[0]);
  }

  const imgURL = (it, which) => "/api/review/samples/" + encodeURIComponent(it.id) + "/" + which;
  const wholeFrame = (it) => it.hasFrame || !it.crop;

  function prefetch(it) {
    new Image().src = imgURL(it, "crop");
    if (wholeFrame(it)) new Image().src = imgURL(it, "frame");
  }

  // ---- one sample
  function render(it) {
    const frame = $("frame");
    frame.onload = () => { sizeOverlay(); draw(); };
    frame.src = wholeFrame(it) ? imgURL(it, "frame") : imgURL(it, "crop");
    frame.alt = wholeFrame(it) ? "the whole frame, with the detection's box" : "the crop (the agent sent no whole frame)";
    $("crop").src = imgURL(it, "crop");
    $("crop").hidden = !wholeFrame(it) || !it.crop;
    $("pred-tag").textContent = it.tag || "no prediction";
    $("pred-prob").textContent = it.tag ? Math.round((it.probability || 0) * 100) + "%" : "";
    const facts = [
      ["Camera", it.camera], ["Agent", it.agent],
      ["Why", it.reason + (it.detail ? ": " + it.detail : "")],
      ["Captured", it.captured ? new Date(it.captured).toLocaleString() : ""],
      ["Model", it.model || ""],
    ];
    if (!wholeFrame(it)) facts.push(["Frame", "not sent (samples.full_frame is off on the agent)"]);
    const dl = $("facts");
    dl.replaceChildren();
    for (const [k, v] of facts) {
      if (!v) continue;
      dl.append(el("dt", "", k), el("dd", "", v));
    }
    const tags = $("tags");
    tags.replaceChildren();
    it.offer.forEach((t, i) => {
      const b = el("button", "btn tag" + (t === it.tag ? " is-predicted" : ""));
      b.type = "button";
      if (i < 9) b.append(el("kbd", "", String(i + 1)), " ");
      b.append(t);
      b.title = t === it.tag ? "the predicted tag: confirm" : "correct to " + t;
      b.addEventListener("click", () => correct(t));
      tags.append(b);
    });
    $("other-tag").hidden = !it.anyTag;
    $("other-tag-input").value = "";
    $("confirm").disabled = !it.tag;
    $("false").disabled = !it.region;
    $("missed").disabled = !wholeFrame(it);
    $("note").value = "";
  }

  // the overlay canvas lies exactly over the picture as shown
  function sizeOverlay() {
    const img = $("frame"), c = $("overlay");
    c.style.left = img.offsetLeft + "px";
    c.style.top = img.offsetTop + "px";
    const dpr = window.devicePixelRatio || 1;
    c.style.width = img.clientWidth + "px";
    c.style.height = img.clientHeight + "px";
    c.width = Math.round(img.clientWidth * dpr);
    c.height = Math.round(img.clientHeight * dpr);
  }
  window.addEventListener("resize", () => { sizeOverlay(); draw(); });

  function rect(ctx, b, colour, label, dashed) {
    const W = ctx.canvas.width, H = ctx.canvas.height, dpr = window.devicePixelRatio || 1;
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.lineWidth = 3 * dpr;
    if (dashed) ctx.setLineDash([8 * dpr, 6 * dpr]);
    ctx.strokeRect(b.left * W, b.top * H, b.width * W, b.height * H);
    if (label) {
      ctx.font = (16 * dpr) + "px system-ui, sans-serif";
      const tw = ctx.measureText(label).width + 10 * dpr, th = 22 * dpr;
      const y = b.top * H > th ? b.top * H - th : b.top * H;
      ctx.fillStyle = colour;
      ctx.fillRect(b.left * W, y, tw, th);
      ctx.fillStyle = "#000";
      ctx.fillText(label, b.left * W + 5 * dpr, y + 16 * dpr);
    }
    ctx.restore();
  }

  function draw() {
    const c = $("overlay"), ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    if (!current || !wholeFrame(current)) return;
    if (current.region) {
      rect(ctx, current.region, "#00ff00", (current.tag || "") + (current.tag ? " " + Math.round(current.probability * 100) + "%" : ""));
    } else if (current.crop) {
      rect(ctx, current.crop, "#00ff00", "crop", true);
    }
    if (drawing) {
      drawing.boxes.forEach((b, i) => rect(ctx, b, "#ffd400", (i + 1) + " " + b.tag));
      if (drawing.drag) rect(ctx, drawing.drag, "#ffd400", drawing.tag, true);
    }
  }

  // ---- answers
  function operator() {
    if (user) return user;
    const v = opInput ? opInput.value.trim() : "";
    if (opInput) localStorage.setItem(OPERATOR_KEY, v);
    return v;
  }

  async function answer(body) {
    if (!current || busy) return;
    const it = current;
    body.operator = operator();
    const note = $("note").value.trim();
    if (note) body.note = note;
    busy = true;
    document.body.classList.add("busy");
    try {
      const r = await api("POST", "/api/review/samples/" + encodeURIComponent(it.id) + "/answer", body);
      if (r.ok) {
        setPending(r.data.stats.pending);
        const res = r.data.result, fb = r.data.feedback;
        let text = "Saved " + it.id + ": " + describe(res) + ".";
        let cls = "ok";
        if (fb.sent) text += " Sent to agent " + res.agent + ".";
        else if (fb.error) { text += " " + fb.error + "."; cls = "warn"; }
        say(text, cls);
        next();
      } else if (r.status === 404) {
        say((r.data.error || "the sample is gone") + ".", "warn");
        next();
      } else {
        say(r.data.error || ("not saved (" + r.status + ")"), "bad");
      }
    } catch (e) {
      say("not saved: the station cannot be reached (" + e.message + ")", "bad");
    } finally {
      busy = false;
      document.body.classList.remove("busy");
    }
  }

  function describe(res) {
    switch (res.kind) {
      case "confirm": return "confirmed " + res.answered;
      case "correct": return res.predicted + " corrected to " + res.answered;
      case "missed": return (res.entries || []).length + " missed part(s)";
      case "false-detection": return "false detection";
    }
    return res.kind;
  }

  function confirm() { if (current && current.tag) answer({ kind: "confirm" }); }
  function correct(tag) {
    if (!current || !tag) return;
    answer(tag === current.tag ? { kind: "confirm" } : { kind: "correct", tag: tag });
  }
  function falseDetection() { if (current && current.region) answer({ kind: "false-detection" }); }
  function skip() {
    if (!current) return;
    skipped.add(current.id);
    say("Skipped " + current.id + ".", "");
    next();
  }

  // ---- missed parts: boxes drawn on the frame
  function startDrawing() {
    if (!current || !wholeFrame(current) || drawing) return;
    drawing = { boxes: [], tag: current.boxTags[0] || "", drag: null };
    $("draw-bar").hidden = false;
    $("frame-box").classList.add("drawing");
    chips();
    say("Drag around each part the detector missed; pick its tag with the buttons or 1-9.", "");
    draw();
  }

  function cancelDrawing() {
    if (!drawing) return;
    drawing = null;
    $("draw-bar").hidden = true;
    $("frame-box").classList.remove("drawing");
    draw();
  }

  function chips() {
    const box = $("box-tags");
    box.replaceChildren();
    current.boxTags.forEach((t, i) => {
      const b = el("button", "btn chip" + (t === drawing.tag ? " on" : ""));
      b.type = "button";
      if (i < 9) b.append(el("kbd", "", String(i + 1)), " ");
      b.append(t);
      b.addEventListener("click", () => pickBoxTag(t));
      box.append(b);
    });
    $("save-missed").disabled = drawing.boxes.length === 0;
    $("undo").disabled = drawing.boxes.length === 0;
  }

  function pickBoxTag(t) {
    if (!drawing || !t) return;
    drawing.tag = t;
    const last = drawing.boxes[drawing.boxes.length - 1];
    if (last && last.fresh) last.tag = t; // the box just drawn takes the tag picked after it
    chips();
    draw();
  }

  function undo() {
    if (!drawing) return;
    drawing.boxes.pop();
    chips();
    draw();
  }

  function saveMissed() {
    if (!drawing || !drawing.boxes.length) return;
    const boxes = drawing.boxes.map((b) => ({ tag: b.tag, left: b.left, top: b.top, width: b.width, height: b.height }));
    answer({ kind: "missed", boxes: boxes });
  }

  function point(ev) {
    const r = $("overlay").getBoundingClientRect();
    return {
      x: Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)),
      y: Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height)),
    };
  }

  const overlay = $("overlay");
  let start = null;
  overlay.addEventListener("pointerdown", (ev) => {
    if (!drawing) return;
    ev.preventDefault();
    overlay.setPointerCapture(ev.pointerId);
    start = point(ev);
    drawing.drag = { left: start.x, top: start.y, width: 0, height: 0 };
  });
  overlay.addEventListener("pointermove", (ev) => {
    if (!drawing || !start) return;
    const p = point(ev);
    drawing.drag = { left: Math.min(start.x, p.x), top: Math.min(start.y, p.y), width: Math.abs(p.x - start.x), height: Math.abs(p.y - start.y) };
    draw();
  });
  const endDrag = () => {
    if (!drawing || !start) return;
    const d = drawing.drag;
    start = null;
    drawing.drag = null;
    for (const b of drawing.boxes) b.fresh = false;
    if (d && d.width >= MIN_BOX && d.height >= MIN_BOX && drawing.boxes.length < 100) {
      drawing.boxes.push({ tag: drawing.tag, left: d.left, top: d.top, width: d.width, height: d.height, fresh: true });
    }
    chips();
    draw();
  };
  overlay.addEventListener("pointerup", endDrag);
  overlay.addEventListener("pointercancel", endDrag);

  // ---- buttons and keys
  $("confirm").addEventListener("click", confirm);
  $("missed").addEventListener("click", startDrawing);
  $("false").addEventListener("click", falseDetection);
  $("skip").addEventListener("click", skip);
  $("undo").addEventListener("click", undo);
  $("save-missed").addEventListener("click", saveMissed);
  $("cancel-missed").addEventListener("click", () => { cancelDrawing(); say("", ""); });
  $("other-tag-btn").addEventListener("click", () => correct($("other-tag-input").value.trim()));
  $("reload").addEventListener("click", () => { skipped.clear(); items = []; current = null; load(true); });
  // an empty queue is looked at again every 5 s, so the next sample shows as soon as it comes
  setInterval(() => {
    if (!current && !document.hidden && !skipped.size && !loading) load(true);
  }, 5000);
  const help = $("help");
  const toggleHelp = (show) => { help.hidden = show === undefined ? !help.hidden : !show; };
  $("help-btn").addEventListener("click", () => toggleHelp());
  $("help-close").addEventListener("click", () => toggleHelp(false));

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
    if (ev.key === "Escape") {
      if (!help.hidden) toggleHelp(false);
      else if (drawing) { cancelDrawing(); say("", ""); }
      else if (typing) t.blur();
      return;
    }
    if (typing) {
      if (ev.key === "Enter" && t.id === "other-tag-input") { ev.preventDefault(); correct(t.value.trim()); }
      return;
    }
    if (ev.key === "?") { toggleHelp(); ev.preventDefault(); return; }
    if (!current || busy || !help.hidden) return;
    const n = ev.key >= "1" && ev.key <= "9" ? Number(ev.key) : 0;
    if (drawing) {
      if (n) pickBoxTag(current.boxTags[n - 1]);
      else if (ev.key === "z" || ev.key === "Z") undo();
      else if (ev.key === "Enter") saveMissed();
      else return;
      ev.preventDefault();
      return;
    }
    if (n) { if (current.offer[n - 1]) correct(current.offer[n - 1]); }
    else if (ev.key === "Enter" || ev.key === "y" || ev.key === "Y") confirm();
    else if (ev.key === "m" || ev.key === "M") startDrawing();
    else if (ev.key === "f" || ev.key === "F") falseDetection();
    else if (ev.key === "s" || ev.key === "S" || ev.key === "ArrowRight") skip();
    else return;
    ev.preventDefault();
  });


  load(true);
})();
