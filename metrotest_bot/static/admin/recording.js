// The call page: a turn's "▶ +m:ss" button plays the recording from that turn's offset.
(function () {
  var audio = document.getElementById("call-audio");
  if (!audio) return;
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.seek");
    if (!button) return;
    var offset = parseFloat(button.getAttribute("data-offset"));
    if (isNaN(offset)) return;
    var seek = function () {
      audio.currentTime = Math.max(0, offset);
      var played = audio.play();
      if (played && played.catch) played.catch(function () { /* autoplay refused: the position is set */ });
    };
    // Seeking before the metadata is known is ignored by browsers: wait for it.
    if (audio.readyState >= 1) seek(); else audio.addEventListener("loadedmetadata", seek, { once: true });
    document.querySelectorAll(".turn.is-playing").forEach(function (t) { t.classList.remove("is-playing"); });
    var turn = button.closest(".turn");
    if (turn) turn.classList.add("is-playing");
  });
})();
