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

// On a phone the menu scrolls sideways: while more of it lies to the right, its edge fades out
// (class "more-right"), so it is clear there is more than the items shown.
(function () {
  function hint(nav) {
    nav.classList.toggle("more-right", nav.scrollLeft + nav.clientWidth < nav.scrollWidth - 2);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".nav").forEach(function (nav) {
      hint(nav);
      nav.addEventListener("scroll", function () { hint(nav); }, { passive: true });
      window.addEventListener("resize", function () { hint(nav); });
    });
  });
})();
