// rolloutctl dashboard: keep the page live without a reload.
// Every second, ask the server for this page's fragment (204 when unchanged) and swap it in.
// Ages are counted here from data-since so that an unchanged page stays unchanged.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  if (!main) { return; }
  var url = main.getAttribute("data-fragment");
  var busy = false;

  function age(seconds) {
    if (seconds < 120) { return seconds + "s"; }
    if (seconds < 3 * 3600) { return Math.floor(seconds / 60) + "m"; }
    if (seconds < 2 * 86400) {
      return Math.floor(seconds / 3600) + "h" + Math.floor((seconds % 3600) / 60) + "m";
    }
    return Math.floor(seconds / 86400) + "d" + Math.floor((seconds % 86400) / 3600) + "h";
  }

  function tickAges() {
    var now = Date.now() / 1000;
    var cells = main.querySelectorAll(".age[data-since]");
    for (var i = 0; i < cells.length; i++) {
      var since = parseFloat(cells[i].getAttribute("data-since"));
      cells[i].textContent = age(Math.max(0, Math.floor(now - since)));
    }
  }

  function poll() {
    if (busy) { return; }
    busy = true;
    var version = main.getAttribute("data-version") || "";
    fetch(url + "?v=" + encodeURIComponent(version), {cache: "no-store"})
      .then(function (response) {
        live.className = response.ok ? "live" : "live down";
        if (response.status === 204 || !response.ok) { return null; }
        return response.json();
      })
      .then(function (data) {
        if (data && data.version !== main.getAttribute("data-version")) {
          main.innerHTML = data.html;  // rendered and escaped by the server
          main.setAttribute("data-version", data.version);
          main.setAttribute("data-updated", String(Date.now()));
          tickAges();
        }
      })
      .catch(function () { live.className = "live down"; })
      .then(function () { busy = false; });
  }

  tickAges();
  setInterval(tickAges, 1000);
  setInterval(poll, 1000);
})();
