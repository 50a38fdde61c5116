// KB page: follow background indexing jobs; reload the page when one ends,
// so the versions table and the KB in force are shown as the server has them.
(function () {
  var watched = document.querySelectorAll("[data-kb-status-url]");
  if (!watched.length) return;

  function percent(p) { return Math.round((p || 0) * 100) + "%"; }

  function poll(el) {
    fetch(el.getAttribute("data-kb-status-url"), { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (s) {
        if (s.done) { window.location.reload(); return; }
        var label = el.querySelector(".progress-label");
        if (label) label.textContent = s.status_label + ", " + percent(s.progress);
        var bar = el.querySelector("progress");
        if (bar) bar.value = s.progress || 0;
        setTimeout(function () { poll(el); }, 700);
      })
      .catch(function () { setTimeout(function () { poll(el); }, 3000); });
  }

  watched.forEach(function (el) { setTimeout(function () { poll(el); }, 400); });
})();
