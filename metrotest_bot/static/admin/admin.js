// Small progressive enhancements; the panel works without JavaScript.
document.addEventListener("submit", function (event) {
  // A slow POST (sign-in, clearing the log) must not be sent twice by a double click.
  var form = event.target;
  if (form.method && form.method.toLowerCase() === "post") {
    setTimeout(function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    }, 0);
  }
});
