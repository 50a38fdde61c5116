// Replay page: follow a running replay and reload the page when it ends, so the diff
// and the publish form are shown as the server has them.
(function () {
  function percent(p) { return Math.round((p || 0) * 100) + "%"; }

  function poll(el) {
    fetch(el.getAttribute("data-replay-status-url"), { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (s) {
        if (s.done) { window.location.reload(); return; }
        var label = el.querySelector(".progress-label");
        if (label) label.textContent = percent(s.progress);
        var bar = el.querySelector("progress");
        if (bar) bar.value = s.progress || 0;
        setTimeout(function () { poll(el); }, 500);
      })
      .catch(function () { setTimeout(function () { poll(el); }, 2000); });
  }

  document.querySelectorAll("[data-replay-status-url]").forEach(function (el) {
    setTimeout(function () { poll(el); }, 300);
  });
})();
