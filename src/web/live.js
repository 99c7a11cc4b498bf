// picket's one script, served from its own origin (the pages work without it): the copy
// buttons of stack frames, and live updates: the issue list and the issue page ask the server
// what changed since the commit they show, every few seconds while the tab is visible, and
// mark it.
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("[data-copy]") : null;
    if (!button || !navigator.clipboard) return;
    navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
      button.textContent = "copied";
    }, function () {
      button.textContent = "select and copy";
    });
  });
})();
(function () {
  "use strict";
  var root = document.querySelector("[data-live]");
  if (!root || !window.fetch) return;
  var url = root.getAttribute("data-live");
  var version = root.getAttribute("data-version");
  var note = document.getElementById("live-note");
  var EVERY = 4000;
  var fresh = {};
  var timer = null;

  function say(text) {
    if (!note) return;
    note.textContent = "";
    note.appendChild(document.createTextNode(text + " "));
    var a = document.createElement("a");
    a.href = window.location.href;
    a.textContent = "Reload";
    note.appendChild(a);
    note.hidden = false;
  }

  function apply(answer) {
    version = String(answer.version);
    if (answer.reload) {
      say("This page has changed.");
      return;
    }
    var unseen = 0;
    answer.changed.forEach(function (issue) {
      var row = document.querySelector('tr[data-issue="' + issue.id + '"]');
      if (row) {
        var cell = row.querySelector(".live-count");
        if (cell) cell.textContent = String(issue.count);
        row.classList.add("live-changed");
      } else if (!root.hasAttribute("data-count")) {
        fresh[issue.id] = true;
        unseen = Object.keys(fresh).length;
      }
      if (root.hasAttribute("data-count")) {
        var before = Number(root.getAttribute("data-count"));
        var count = document.getElementById("issue-count");
        if (count) count.textContent = String(issue.count);
        if (issue.count > before) {
          var n = issue.count - before;
          say(n + " new event" + (n === 1 ? "" : "s") + " since this page was loaded.");
        }
      }
    });
    if (unseen > 0) {
      say(unseen + " new or changed issue" + (unseen === 1 ? "" : "s") + " not shown.");
    }
  }

  function poll() {
    timer = null;
    if (document.hidden) return;
    var sep = url.indexOf("?") < 0 ? "?" : "&";
    fetch(url + sep + "since=" + encodeURIComponent(version), {
      credentials: "same-origin",
      headers: { accept: "application/json" },
    })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (answer) { if (answer) apply(answer); })
      .catch(function () {})
      .then(schedule);
  }

  function schedule() {
    if (timer === null && !document.hidden) timer = setTimeout(poll, EVERY);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    } else {
      poll();
    }
  });
  schedule();
})();
