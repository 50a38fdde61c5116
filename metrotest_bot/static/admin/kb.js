// KB page: refuse a file over the size limit before sending it (a browser cut off
// mid-upload by the server's 413 shows "connection reset", not our message), and
// follow background indexing jobs, reloading the page when one ends so the versions
// table and the KB in force are shown as the server has them.
(function () {
  var form = document.querySelector("form.upload-form");
  var input = document.getElementById("kb-file");
  if (form && input) {
    form.addEventListener("submit", function (e) {
      var max = Number(input.getAttribute("data-max-bytes"));
      var file = input.files && input.files[0];
      if (!file || !max || file.size <= max) return;
      e.preventDefault();
      e.stopPropagation();  // nothing was sent: the submit button stays usable
      var alert = form.parentNode.querySelector(".upload-error");
      if (!alert) {
        alert = document.createElement("div");
        alert.className = "alert alert-error upload-error";
        alert.setAttribute("role", "alert");
        form.parentNode.insertBefore(alert, form);
      }
      alert.textContent = input.getAttribute("data-too-big");
    });
  }

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

  document.querySelectorAll("[data-kb-status-url]").forEach(function (el) {
    setTimeout(function () { poll(el); }, 400);
  });
})();
