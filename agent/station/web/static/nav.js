// cvedge operator station: the pending count of the review queue in the navigation, kept
// up to date on every page that shows it.
"use strict";
(function () {
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
