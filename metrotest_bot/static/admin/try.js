// Try page: send the question, show the passages, then the answer piece by piece
// as the server streams it (Server-Sent Events read from a fetch() body).
(function () {
  var form = document.getElementById("try-form");
  if (!form || !window.fetch || !window.TextDecoder || !window.ReadableStream) return;
  var result = document.getElementById("try-result");
  var answer = document.getElementById("try-answer");
  var status = document.getElementById("try-status");
  var timings = document.getElementById("try-timings");
  var gate = document.getElementById("try-gate");
  var list = document.getElementById("try-passages");
  var SOURCES = { llm: "ответ LLM", offline: "ответ из базы знаний", refusal: "отказ", phrase: "фраза" };

  function ms(v) { return v == null ? "—" : (v >= 10000 ? (v / 1000).toFixed(1).replace(".", ",") + " с" : Math.round(v) + " мс"); }
  function score(v) { return v == null ? "—" : v.toFixed(3).replace(".", ","); }
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; }
  function buttons(disabled) { form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = disabled; }); }

  var handlers = {
    passages: function (d) {
      status.textContent = d.answered ? "отвечает…" : SOURCES.refusal;
      gate.textContent = d.answered ? "Найден ответ в базе знаний." : "Ничего достаточно близкого: бот отвечает отказом.";
      answer.classList.toggle("is-refusal", !d.answered);
      d.passages.forEach(function (p) {
        var li = el("li", "try-passage");
        var head = el("div", "muted small");
        head.appendChild(el("span", "score", "оценка " + score(p.score)));
        head.appendChild(document.createTextNode(" · " + (p.section || "без раздела")));
        li.appendChild(head);
        li.appendChild(document.createTextNode(p.text));
        list.appendChild(li);
      });
      timings.textContent = "поиск " + ms(d.retrieval_ms);
    },
    piece: function (d) {
      answer.appendChild(el("span", "piece", d.text));
      answer.appendChild(document.createTextNode(" "));
    },
    done: function (d) {
      status.textContent = SOURCES[d.source] || d.source;
      var t = d.timings || {};
      timings.textContent = "поиск " + ms(t.retrieval_ms) + " · первая фраза " + ms(t.first_piece_ms) + " · всего " + ms(t.total_ms) +
        (d.error ? " · LLM недоступна, ответ из базы знаний" : "");
      result.setAttribute("data-done", "1");
    },
    invalid: function (d) { status.textContent = (d.errors || []).join(" "); result.setAttribute("data-done", "1"); },
    failed: function (d) { status.textContent = d.message; result.setAttribute("data-done", "1"); }
  };

  function dispatch(block) {
    var event = "message", data = "";
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) event = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
    });
    if (handlers[event] && data) handlers[event](JSON.parse(data));
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    result.hidden = false;
    result.removeAttribute("data-done");
    answer.textContent = ""; list.textContent = ""; timings.textContent = ""; gate.textContent = "";
    status.textContent = "ищу в базе знаний…";
    answer.classList.remove("is-refusal");
    fetch(form.getAttribute("data-stream-url"), { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("text/event-stream") !== 0) {
          status.textContent = response.status === 400 ? "Форма устарела: обновите страницу и спросите снова." : "Ошибка сервера (" + response.status + ").";
          result.setAttribute("data-done", "1");
          return;
        }
        if (!response.body) throw new Error("no body");
        var reader = response.body.getReader(), decoder = new TextDecoder("utf-8"), buffer = "";
        function read() {
          return reader.read().then(function (chunk) {
            if (chunk.done) { if (buffer.trim()) dispatch(buffer); return; }
            buffer += decoder.decode(chunk.value, { stream: true });
            var parts = buffer.split("\n\n");
            buffer = parts.pop();
            parts.forEach(dispatch);
            return read();
          });
        }
        return read();
      })
      .catch(function () { status.textContent = "Связь с сервером прервалась. Попробуйте ещё раз."; result.setAttribute("data-done", "1"); })
      .then(function () { buttons(false); });
  });
})();
