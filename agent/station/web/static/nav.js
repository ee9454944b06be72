// cvedge operator station: what the review and confusion pages share: the pending count of
// the review queue in the navigation, kept up to date, and the Upload button.
"use strict";
(function () {
  const up = document.getElementById("upload");
  if (up) {
    const say = (text, cls) => {
      const m = document.getElementById("message");
      if (m) { m.textContent = text; m.className = "message " + cls; }
    };
    up.addEventListener("click", async () => {
      up.disabled = true;
      say("Uploading the answers for training…", "");
      try {
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        const r = await fetch("/api/review/upload", { method: "POST", credentials: "same-origin", cache: "no-store", headers: { "X-CSRF-Token": csrf } });
        if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
        let data = {};
        try { data = (await r.json()) || {}; } catch (e) { data = {}; }
        if (r.ok) say("Uploaded: " + data.sent + " sent, " + data.refused + " refused by the training service.", "ok");
        else say(data.error || ("upload failed (" + r.status + ")"), "bad");
      } catch (e) {
        say("upload: the station cannot be reached (" + e.message + ")", "bad");
      } finally {
        up.disabled = false;
      }
    });
  }

  const badge = document.getElementById("nav-pending");
  if (!badge) return;
  async function poll() {
    if (!document.hidden) {
      try {
        const r = await fetch("/api/review/stats", { credentials: "same-origin", cache: "no-store" });
        if (r.ok) {
          const s = await r.json();
          badge.textContent = String(s.pending);
        }
      } catch (e) { /* the next poll tries again */ }
    }
    setTimeout(poll, 15000);
  }
  setTimeout(poll, 15000);
})();
