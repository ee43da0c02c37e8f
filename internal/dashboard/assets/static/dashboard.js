// meshward dashboard: keep the open page live without reloading. It polls
// the page's HTML fragment (rendered by the control plane, so there is one
// rendering path), swaps it in when it changed, and ticks certificate
// countdowns every second. No dependencies, no build step.
(function () {
  'use strict';
  var live = document.getElementById('live');
  if (!live) { return; }
  var stamp = document.getElementById('updated');
  var state = document.getElementById('live-state');
  var every = Number(live.getAttribute('data-refresh')) || 2000;
  var url = live.getAttribute('data-fragment');
  var last = null;

  function human(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    s = s % 60;
    if (d > 0) { return d + 'd ' + h + 'h'; }
    if (h > 0) { return h + 'h ' + m + 'm'; }
    if (m > 0) { return m + 'm ' + s + 's'; }
    return s + 's';
  }

  function tick() {
    var now = Date.now();
    var els = document.querySelectorAll('time.countdown');
    for (var i = 0; i < els.length; i++) {
      var t = Number(els[i].getAttribute('data-unix')) * 1000;
      if (!t) { continue; }
      var left = t - now;
      els[i].textContent = left >= 0 ? 'in ' + human(left) : human(left) + ' ago';
    }
  }

  function schedule() { window.setTimeout(refresh, every); }

  function refresh() {
    if (document.hidden) { schedule(); return; }
    fetch(url, { cache: 'no-store', credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (!r.ok) { throw new Error('HTTP ' + r.status); }
        return r.text();
      })
      .then(function (html) {
        if (html !== last) {
          live.innerHTML = html;
          last = html;
          tick();
        }
        var now = new Date();
        if (stamp) {
          stamp.setAttribute('datetime', now.toISOString());
          stamp.textContent = now.toLocaleTimeString();
        }
        if (state && state.textContent !== 'Live') {
          state.textContent = 'Live';
          state.className = '';
        }
      })
      .catch(function () {
        if (state) {
          state.textContent = 'Connection lost, retrying';
          state.className = 'lost';
        }
      })
      .then(schedule);
  }

  window.setInterval(tick, 1000);
  schedule();
})();
