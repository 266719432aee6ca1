// The dashboard's only script: live refresh and confirmations. It never builds
// HTML from data: the server renders (and escapes) every page, and a refresh
// swaps in the #live part of the page fetched again.
(function () {
  "use strict";
  var REFRESH_MS = 2000;

  function refresh() {
    var live = document.getElementById("live");
    if (!live || document.hidden) { return; }
    fetch(window.location.href, {credentials: "same-origin", headers: {"X-Live": "1"}})
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) { live.replaceWith(document.importNode(fresh, true)); }
      })
      .catch(function () { /* the next tick tries again */ });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  if (document.body.getAttribute("data-live") === "1") {
    window.setInterval(refresh, REFRESH_MS);
  }
}());
