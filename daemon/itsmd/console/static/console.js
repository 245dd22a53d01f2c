// itsmd console: times in the browser's zone with their age, and live pages. The
// pages work without it; it only enhances them.
(function () {
  "use strict";
  var POLL_MS = 15000;
  var fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"
  });

  function span(ms) {
    var s = Math.round(Math.abs(ms) / 1000);
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min";
    var h = Math.floor(m / 60); m = m % 60;
    if (h < 48) return h + " h" + (m ? " " + m + " min" : "");
    var d = Math.floor(h / 24); h = h % 24;
    return d + " d" + (h ? " " + h + " h" : "");
  }

  function relative(at) {
    var ms = Date.now() - at.getTime();
    if (Math.abs(ms) < 1000) return "now";
    return ms > 0 ? span(ms) + " ago" : "in " + span(ms);
  }

  // <time datetime> written in UTC by the server becomes local time and age.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) return;
      el.title = at.toISOString();
      if (el.hasAttribute("data-countdown")) {
        el.textContent = relative(at) + " (" + fmt.format(at) + ")";
      } else if (el.closest(".due.breached")) {
        el.textContent = relative(at);
      } else {
        el.textContent = fmt.format(at) + " (" + relative(at) + ")";
      }
    });
  }

  // A field in use or changed and not sent yet: a swap would lose it.
  function editing() {
    var el = document.activeElement;
    if (el && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName)) return true;
    var fields = document.querySelectorAll("#main input, #main textarea");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      var changed = f.type === "checkbox" ? f.checked !== f.defaultChecked : f.value !== f.defaultValue;
      if (f.type !== "hidden" && changed) return true;
    }
    return false;
  }

  // Fetch the same URL, swap <main>, keep the scroll position; wait while a form
  // field has focus or the tab is hidden, so nobody loses what they are typing.
  function poll() {
    if (document.hidden || editing()) return schedule();
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (!r.ok || r.redirected) throw new Error("status " + r.status);
        return r.text();
      })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        var main = document.getElementById("main");
        if (next && main && !editing()) {
          var x = window.scrollX, y = window.scrollY;
          main.innerHTML = next.innerHTML;
          localTimes(main);
          window.scrollTo(x, y);
        }
      })
      .catch(function () { /* the next poll tries again */ })
      .then(schedule);
  }

  function schedule() { setTimeout(poll, POLL_MS); }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    // A wide screen has room for the list's filters: open them.
    var box = document.getElementById("filter-box");
    if (box && window.matchMedia("(min-width: 900px)").matches) box.open = true;
    setInterval(function () { localTimes(document); }, 30000);
    if (document.body.getAttribute("data-live") === "poll") schedule();
  });
})();
