// StreamTools widget: connects to widgetd's websocket, shows the snapshot,
// animates every update, and never stalls silently: it reconnects with
// backoff on close, error or a missed heartbeat, and takes a fresh snapshot.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("widget-config").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var el = {
    widget: $("widget"), card: $("card"), title: $("title"), count: $("count"),
    goal: $("goal"), bar: $("bar"), fill: $("fill"), fx: $("fx"), badge: $("badge"), hint: $("hint")
  };
  var fmt = new Intl.NumberFormat();

  // state is public for tests and for debugging in OBS's inspector.
  var state = window.streamtoolsWidget = {
    total: null, shown: 0, connected: false, snapshots: 0, updates: 0, noData: false,
    heartbeats: 0, reconnects: 0, alerts: 0, heartbeatMs: cfg.heartbeat_ms || 10000, lastMessage: 0,
    closes: {} // websocket closes by close code
  };

  function applySettings(s) {
    var root = document.documentElement.style;
    root.setProperty("--fg", s.color);
    root.setProperty("--bar", s.bar_color);
    root.setProperty("--bg", s.bg_color);
    root.setProperty("--fs", s.font_size + "px");
    el.title.textContent = s.title || "";
    var hasGoal = s.goal > 0;
    el.widget.classList.toggle("nogoal", !hasGoal);
    el.goal.textContent = hasGoal ? "/ " + fmt.format(s.goal) : "";
    el.bar.setAttribute("aria-valuemax", String(s.goal || 0));
  }

  function render(v) { el.count.textContent = fmt.format(Math.round(v)); }

  var frame = 0, settle = 0;
  function animateTo(target) {
    var from = state.shown, start = performance.now();
    var dur = Math.min(1400, 450 + 90 * Math.abs(target - from));
    cancelAnimationFrame(frame);
    clearTimeout(settle);
    var step = function (now) {
      var t = Math.min(1, (now - start) / dur);
      var e = 1 - Math.pow(1 - t, 3);
      state.shown = from + (target - from) * e;
      render(state.shown);
      if (t < 1) frame = requestAnimationFrame(step);
    };
    frame = requestAnimationFrame(step);
    // Frames may not run (hidden source): land on the value regardless.
    settle = setTimeout(function () { cancelAnimationFrame(frame); state.shown = target; render(target); }, dur + 60);
  }

  function updateBar(total, goal) {
    var pct = goal > 0 ? Math.min(100, (total / goal) * 100) : 0;
    document.documentElement.style.setProperty("--pct", pct.toFixed(2) + "%");
    el.bar.setAttribute("aria-valuenow", String(total));
    el.widget.classList.toggle("done", goal > 0 && total >= goal);
  }

  function alertFx(delta) {
    state.alerts++;
    el.widget.classList.remove("alert");
    void el.widget.offsetWidth; // restart the CSS animations
    el.widget.classList.add("alert");
    var plus = document.createElement("span");
    plus.className = "plus";
    plus.textContent = "+" + fmt.format(delta);
    el.fx.appendChild(plus);
    for (var i = 0; i < 10; i++) {
      var s = document.createElement("span");
      var a = (Math.PI * 2 * i) / 10 + Math.random() * 0.5;
      var r = 1.6 + Math.random() * 1.4;
      s.className = "spark";
      s.style.setProperty("--dx", (Math.cos(a) * r).toFixed(2) + "em");
      s.style.setProperty("--dy", (Math.sin(a) * r).toFixed(2) + "em");
      el.fx.appendChild(s);
    }
    setTimeout(function () {
      while (el.fx.childNodes.length > 40) el.fx.removeChild(el.fx.firstChild);
    }, 0);
    clearTimeout(alertFx.t);
    alertFx.t = setTimeout(function () {
      el.widget.classList.remove("alert");
      el.fx.textContent = "";
    }, 1600);
  }

  // In preview only (widgetd sends no_data to preview pages only): a URL
  // whose ids match no data says so, rather than showing a silent 0.
  function showHint(m) {
    if (!cfg.preview) return;
    state.noData = !!m.no_data;
    el.hint.hidden = !m.no_data;
    if (!m.no_data) return;
    var ids = "influencer " + m.influencer_id + (m.campaign != null ? " / campaign " + m.campaign : "");
    el.hint.textContent = "No data yet for " + ids + ": check the spelling; ids are case-sensitive.";
  }

  function onCounts(m) {
    if (m.heartbeat_ms) state.heartbeatMs = m.heartbeat_ms;
    applySettings(m);
    showHint(m);
    var prev = state.total;
    state.total = m.total;
    el.count.dataset.value = String(m.total);
    if (prev === null) {
      state.shown = m.total;
      render(m.total);
    } else if (m.total !== prev) {
      animateTo(m.total);
      // Only a live update that adds events is an alert; a snapshot after
      // a reconnect just catches up.
      if (m.type === "update" && m.total > prev) alertFx(m.total - prev);
    }
    updateBar(m.total, m.goal);
  }

  function setConnected(ok) {
    state.connected = ok;
    el.widget.dataset.state = ok ? "live" : "disconnected";
    if (cfg.preview) el.badge.hidden = ok;
  }

  var ws = null, attempt = 0, retry = 0;
  function url() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + cfg.ws + location.search;
  }
  function connect() {
    clearTimeout(retry);
    var sock;
    try {
      sock = new WebSocket(url());
    } catch (e) {
      schedule(false);
      return;
    }
    ws = sock;
    sock.onopen = function () { state.lastMessage = Date.now(); };
    sock.onmessage = function (ev) {
      if (ws !== sock) return;
      state.lastMessage = Date.now();
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.type === "heartbeat") { state.heartbeats++; return; }
      if (m.type === "snapshot") { state.snapshots++; attempt = 0; setConnected(true); }
      else if (m.type === "update") { state.updates++; }
      else return;
      onCounts(m);
    };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null;
      setConnected(false);
      // The counter keeps its last total until the next snapshot.
      state.closes[ev.code] = (state.closes[ev.code] || 0) + 1;
      // 1001 (going away: widgetd shuts down or restarts) and 1012
      // (service restart): come back at once, then the usual backoff.
      schedule(ev.code === 1001 || ev.code === 1012);
    };
  }
  function schedule(soon) {
    var base = soon && attempt === 0 ? 200 : Math.min(15000, 500 * Math.pow(2, attempt));
    attempt++;
    state.reconnects++;
    retry = setTimeout(connect, base / 2 + Math.random() * base / 2);
  }
  // A connection that hears nothing (not even a heartbeat) for three
  // heartbeat intervals is dead even if the socket does not know it yet.
  setInterval(function () {
    if (ws && ws.readyState === WebSocket.OPEN && Date.now() - state.lastMessage > 3 * state.heartbeatMs) {
      var dead = ws;
      ws = null;
      dead.close();
      setConnected(false);
      schedule(false);
    }
  }, 1000);

  applySettings(cfg.settings);
  updateBar(0, cfg.settings.goal);
  connect();
})();
