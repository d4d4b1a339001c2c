// StreamTools dashboard: fills the server's pages from the JSON API, polls
// it every few seconds, and draws the charts as plain SVG. No library, no
// CDN: this file is all the script there is. Data goes into the page with
// textContent only, never as HTML.
(function () {
  'use strict';
  var body = document.body;
  var page = body.dataset.page;
  if (!page) return; // the login page needs no script

  var REFRESH = Number(body.dataset.refresh) || 5000;
  var FILTERS = ['from', 'to', 'product', 'influencer', 'campaign', 'event_type'];
  var NO_CAMPAIGN = '(none)';
  var nf = new Intl.NumberFormat();
  var SVGNS = 'http://www.w3.org/2000/svg';

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  // el builds an element: el('td', {class: 'num'}, 'text', child, ...).
  function el(tag, attrs) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (attrs[k] == null || attrs[k] === false) continue;
      if (k === 'text') e.textContent = attrs[k];
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c == null) continue;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }

  // ---- filter state: in the URL, so that a view can be bookmarked ----
  var state = {};
  var params = new URLSearchParams(location.search);
  FILTERS.forEach(function (k) { state[k] = params.get(k) || ''; });
  var offset = 0;

  function query(extra) {
    var p = new URLSearchParams();
    FILTERS.forEach(function (k) { if (state[k]) p.set(k, state[k]); });
    for (var k in extra || {}) p.set(k, extra[k]);
    return p.toString();
  }

  function syncURL() {
    var q = query();
    history.replaceState(null, '', location.pathname + (q ? '?' + q : ''));
    $$('a[data-export]').forEach(function (a) {
      a.href = '/api/v1/export/' + a.dataset.export + '.csv' + (q ? '?' + q : '');
      a.setAttribute('download', '');
    });
    $$('.tabs a').forEach(function (a) { a.href = a.getAttribute('href').split('?')[0] + (q ? '?' + q : ''); });
  }

  function getJSON(url) {
    return fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'application/json' } }).then(function (r) {
      if (r.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search); throw new Error('logged out'); }
      return r.json().then(function (j) {
        if (!r.ok) { var e = new Error(j.error || ('HTTP ' + r.status)); e.field = j.field; throw e; }
        return j;
      });
    });
  }

  function showError(err) {
    var box = $('#error');
    if (!box) return;
    if (!err) { box.hidden = true; return; }
    box.textContent = err.message + (err.field ? ' (' + err.field + ')' : '');
    box.hidden = false;
  }

  var live = $('#live'), liveText = $('#live-text');
  function setLive(ok) {
    if (!live) return;
    live.classList.toggle('stale', !ok);
    liveText.textContent = ok ? 'Live · ' + new Date().toLocaleTimeString() : 'Reconnecting…';
  }

  // ---- filters ----
  function fillSelect(sel, values, label) {
    var cur = state[sel.name];
    var keep = $$('option', sel).filter(function (o) { return o.value === '' || o.value === NO_CAMPAIGN; });
    sel.textContent = '';
    keep.forEach(function (o) { sel.appendChild(o); });
    values.forEach(function (v) { sel.appendChild(el('option', { value: v, text: label ? label(v) : v })); });
    if (cur && values.indexOf(cur) < 0 && cur !== NO_CAMPAIGN) sel.appendChild(el('option', { value: cur, text: cur }));
    sel.value = cur;
  }

  function initFilters() {
    var form = $('#filters');
    if (!form) return Promise.resolve();
    FILTERS.forEach(function (k) {
      var input = form.elements[k];
      input.value = state[k];
      input.addEventListener('change', function () {
        state[k] = input.value.trim();
        offset = 0;
        markActive();
        syncURL();
        refreshNow();
      });
    });
    $$('.seg button', form).forEach(function (b) {
      b.addEventListener('click', function () {
        var days = Number(b.dataset.days);
        var to = state.to ? new Date(state.to + 'T00:00:00Z') : new Date(Date.UTC(new Date().getFullYear(), new Date().getMonth(), new Date().getDate()));
        var from = new Date(to.getTime() - (days - 1) * 86400000);
        state.to = to.toISOString().slice(0, 10);
        state.from = from.toISOString().slice(0, 10);
        form.elements.from.value = state.from;
        form.elements.to.value = state.to;
        offset = 0;
        markActive();
        syncURL();
        refreshNow();
      });
    });
    form.addEventListener('reset', function (ev) {
      ev.preventDefault();
      FILTERS.forEach(function (k) { state[k] = ''; form.elements[k].value = ''; });
      offset = 0;
      markActive();
      syncURL();
      refreshNow();
    });
    form.addEventListener('submit', function (ev) { ev.preventDefault(); });
    markActive();
    return getJSON('/api/v1/options').then(function (o) {
      fillSelect(form.elements.product, o.products);
      fillSelect(form.elements.campaign, o.campaigns);
      fillSelect(form.elements.event_type, o.event_types);
      var dl = $('#l-influencers');
      dl.textContent = '';
      o.influencers.forEach(function (v) { dl.appendChild(el('option', { value: v })); });
    }).catch(showError);
  }

  function markActive() {
    var form = $('#filters');
    FILTERS.forEach(function (k) { form.elements[k].classList.toggle('active-filter', !!state[k] && k !== 'from' && k !== 'to'); });
  }

  // setFilter applies one filter from a click in a table.
  function setFilter(k, v) {
    state[k] = v;
    var input = $('#filters').elements[k];
    if (input.tagName === 'SELECT' && !$$('option', input).some(function (o) { return o.value === v; })) {
      input.appendChild(el('option', { value: v, text: v }));
    }
    input.value = v;
    offset = 0;
    markActive();
    syncURL();
    refreshNow();
    window.scrollTo({ top: 0, behavior: 'smooth' });
  }

  // Filter inputs show the range the server chose when the URL names none.
  function showRange(f) {
    var form = $('#filters');
    if (!state.from) form.elements.from.value = f.from;
    if (!state.to) form.elements.to.value = f.to;
    var t = $('#range-text');
    if (t) {
      var parts = [fmtDay(f.from, true) + ' – ' + fmtDay(f.to, true)];
      if (f.product) parts.push('product ' + f.product);
      if (f.influencer) parts.push('influencer ' + f.influencer);
      if (f.campaign) parts.push(f.campaign === NO_CAMPAIGN ? 'no campaign' : 'campaign ' + f.campaign);
      if (f.event_type) parts.push('event type ' + f.event_type);
      t.textContent = parts.join(' · ');
    }
  }

  function fmtDay(s, year) {
    var d = new Date(s + 'T00:00:00Z');
    var o = { day: 'numeric', month: 'short', timeZone: 'UTC' };
    if (year) o.year = 'numeric';
    return d.toLocaleDateString(undefined, o);
  }

  function fmtTime(s) {
    var d = new Date(s);
    return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' }) + ' ' + d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  // ---- chart: stacked bars per day ----
  function niceMax(v) {
    if (v <= 4) return 4;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }

  function drawChart(box, rows) {
    box.textContent = '';
    var total = rows.reduce(function (a, r) { return a + r.counted + r.duplicates; }, 0);
    var W = box.clientWidth || 800, H = box.clientHeight || 260;
    var m = { l: 44, r: 8, t: 10, b: 26 };
    var w = W - m.l - m.r, h = H - m.t - m.b;
    var max = niceMax(Math.max.apply(null, rows.map(function (r) { return r.counted + r.duplicate_visitor + r.duplicate_event_id; }).concat([1])));
    var s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'Events per day' });
    for (var i = 0; i <= 4; i++) {
      var y = m.t + h - (h * i) / 4;
      s.appendChild(svg('line', { x1: m.l, x2: W - m.r, y1: y, y2: y, class: 'grid-line' }));
      var lab = svg('text', { x: m.l - 8, y: y + 4, 'text-anchor': 'end', class: 'axis' });
      lab.textContent = nf.format(Math.round((max * i) / 4));
      s.appendChild(lab);
    }
    var n = rows.length, step = w / Math.max(n, 1), bw = Math.max(1, Math.min(28, step * 0.68));
    var every = Math.ceil(n / Math.max(1, Math.floor(w / 64)));
    var hover = svg('rect', { class: 'hover', x: 0, y: m.t, width: step, height: h, visibility: 'hidden' });
    s.appendChild(hover);
    rows.forEach(function (r, i) {
      var x = m.l + i * step + (step - bw) / 2, base = m.t + h;
      [['counted', 'bar-c'], ['duplicate_visitor', 'bar-dv'], ['duplicate_event_id', 'bar-de']].forEach(function (p) {
        var v = r[p[0]];
        if (!v) return;
        var bh = (h * v) / max;
        base -= bh;
        s.appendChild(svg('rect', { x: x, y: base, width: bw, height: Math.max(bh, 1), rx: Math.min(3, bw / 4), class: p[1] }));
      });
      if (i % every === 0) {
        var t = svg('text', { x: m.l + i * step + step / 2, y: H - 8, 'text-anchor': 'middle', class: 'axis' });
        t.textContent = fmtDay(r.day);
        s.appendChild(t);
      }
    });
    box.appendChild(s);
    if (!total) {
      box.appendChild(el('div', { class: 'empty', text: 'No events in this range yet.' }));
      box.lastChild.style.position = 'absolute';
      box.lastChild.style.inset = '0';
    }
    var tip = el('div', { class: 'tip', hidden: true });
    box.appendChild(tip);
    s.addEventListener('mousemove', function (ev) {
      var rect = s.getBoundingClientRect();
      var x = ((ev.clientX - rect.left) * W) / rect.width - m.l;
      var i = Math.floor(x / step);
      if (i < 0 || i >= n) { tip.hidden = true; hover.setAttribute('visibility', 'hidden'); return; }
      var r = rows[i];
      hover.setAttribute('x', m.l + i * step);
      hover.setAttribute('visibility', 'visible');
      tip.textContent = '';
      tip.appendChild(el('b', { text: fmtDay(r.day, true) }));
      tip.appendChild(el('div', { text: nf.format(r.counted) + ' counted' }));
      tip.appendChild(el('div', { text: nf.format(r.duplicate_visitor) + ' duplicate visitor · ' + nf.format(r.duplicate_event_id) + ' duplicate event id' }));
      tip.hidden = false;
      tip.style.left = ((m.l + i * step + step / 2) * rect.width) / W + 'px';
      tip.style.top = '0px';
    });
    s.addEventListener('mouseleave', function () { tip.hidden = true; hover.setAttribute('visibility', 'hidden'); });
  }

  // ---- tables ----
  var EMPTY = { campaign: 'No campaign', country: 'Unknown', source: 'Not given', medium: 'Not given', event_type: '(none)' };
  var CLICKABLE = { influencer_id: 'influencer', campaign: 'campaign', event_type: 'event_type', product: 'product' };

  // dupCell shows the duplicates, split by reason with the chart's colours.
  function dupCell(r) {
    var td = el('td', { class: 'num dups', title: nf.format(r.duplicate_visitor) + ' same visitor, same day · ' + nf.format(r.duplicate_event_id) + ' repeated event id' });
    td.appendChild(el('span', { class: 'dup-total', text: nf.format(r.duplicates) }));
    if (r.duplicates) {
      td.appendChild(el('span', { class: 'reasons' },
        el('i', { class: 'dot dv' }), nf.format(r.duplicate_visitor), ' ', el('i', { class: 'dot de' }), nf.format(r.duplicate_event_id)));
    }
    return td;
  }

  function countCell(v, max) {
    var bar = el('div', { class: 'bar' });
    bar.style.width = max ? Math.max(2, Math.round((64 * v) / max)) + "px" : '2px';
    return el('td', { class: 'num' }, el('div', { class: 'barcell' }, el('span', { text: nf.format(v) }), el('div', { class: 'bar-track' }, bar)));
  }

  function keyCell(key, value, sub) {
    var shown = value === '' ? (EMPTY[key] || '—') : value;
    var content;
    if (CLICKABLE[key]) {
      content = el('a', { href: '#', title: 'Filter on ' + shown, onclick: function (ev) {
        ev.preventDefault();
        setFilter(CLICKABLE[key], key === 'campaign' && value === '' ? NO_CAMPAIGN : value);
      } }, shown);
    } else {
      content = document.createTextNode(shown);
    }
    var td = el('td', { class: 'key', title: shown }, content);
    if (value === '') td.classList.add('muted');
    if (sub) td.appendChild(el('div', { class: 'muted small', text: sub }));
    return td;
  }

  function breakdownTable(section, data) {
    var wrap = $('.table-wrap', section);
    var key = section.dataset.key;
    if (!data.rows.length) { wrap.textContent = ''; wrap.appendChild(el('div', { class: 'empty', text: 'No data for these filters.' })); return; }
    var max = Math.max.apply(null, data.rows.map(function (r) { return r.counted; }));
    var tbody = el('tbody');
    data.rows.forEach(function (r) {
      tbody.appendChild(el('tr', null, keyCell(key, r[key], key === 'influencer_id' ? r.product : null), countCell(r.counted, max), dupCell(r)));
    });
    var t = el('table', null, el('thead', null, el('tr', null, el('th', { text: section.dataset.label }), el('th', { class: 'num', text: 'Counted' }), el('th', { class: 'num', text: 'Duplicates' }))), tbody);
    wrap.textContent = '';
    wrap.appendChild(t);
    if (data.more) wrap.appendChild(el('p', { class: 'muted small', text: 'Top ' + data.rows.length + ' shown; the CSV has every row.' }));
  }

  function eventsTable(section, data) {
    var wrap = $('.table-wrap', section);
    if (!data.rows.length) { wrap.textContent = ''; wrap.appendChild(el('div', { class: 'empty', text: 'No events for these filters.' })); return; }
    var head = ['Received', 'Influencer', 'Campaign', 'Event', 'Country', 'Source', 'Medium', 'Verdict'];
    var tbody = el('tbody');
    data.rows.forEach(function (r) {
      var verdict = r.verdict === 'counted' ? 'counted' : (r.reason || 'duplicate');
      var label = { counted: 'Counted', duplicate_visitor: 'Duplicate visitor', duplicate_event_id: 'Duplicate event id' }[verdict] || verdict;
      tbody.appendChild(el('tr', null,
        el('td', { class: 'when', title: r.received_at, text: fmtTime(r.received_at) }),
        keyCell('influencer_id', r.influencer_id, r.product),
        keyCell('campaign', r.campaign),
        el('td', { text: r.event_name ? r.event_type + ' · ' + r.event_name : r.event_type }),
        el('td', { text: r.country || '—' }),
        el('td', { text: r.source || '—' }),
        el('td', { text: r.medium || '—' }),
        el('td', null, el('span', { class: 'badge ' + verdict, text: label }))));
    });
    var htr = el('tr');
    head.forEach(function (h) { htr.appendChild(el('th', { text: h })); });
    wrap.textContent = '';
    wrap.appendChild(el('table', null, el('thead', null, htr), tbody));
  }

  // ---- pages ----
  function renderOverview(d) {
    showRange(d.filter);
    var t = d.totals, all = t.counted + t.duplicates;
    $('#k-counted').textContent = nf.format(t.counted);
    $('#k-duplicates').textContent = nf.format(t.duplicates);
    $('#k-dup-visitor').textContent = nf.format(t.duplicate_visitor);
    $('#k-dup-event').textContent = nf.format(t.duplicate_event_id);
    $('#k-dup-rate').textContent = all ? (100 * t.duplicates / all).toFixed(1) + ' % of all postbacks' : 'no postbacks';
    var days = d.views.days.rows.filter(function (r) { return r.counted > 0; }).length;
    $('#k-counted-sub').textContent = nf.format(all) + ' postbacks received · ' + days + ' active day' + (days === 1 ? '' : 's');
    drawChart($('#chart'), d.views.days.rows);
    $$('section[data-view]').forEach(function (sec) {
      var v = d.views[sec.dataset.view];
      if (sec.dataset.view === 'events') eventsTable(sec, v); else breakdownTable(sec, v);
    });
  }

  var PAGE = 50;
  var selected = null; // product/influencer key of the previewed widget
  var previewed = null; // product of the previewed widget

  // The widget counts only its product's event types, the tables every
  // type: the note beside the preview says which (/api/v1/widgets).
  var widgets = {};
  function loadWidgets() {
    return getJSON('/api/v1/widgets').then(function (w) {
      widgets = {};
      (w.known ? w.products : []).forEach(function (p) { widgets[p.product] = p; });
      showNote();
    }, function () {});
  }
  function showNote() {
    var box = $('#preview-note');
    var w = previewed !== null && widgets[previewed];
    box.textContent = w && w.note ? w.note : '';
    box.hidden = !(w && w.note);
  }

  function copyButton(input) {
    return el('button', { type: 'button', onclick: function (ev) {
      var b = ev.currentTarget;
      var done = function () { b.textContent = 'Copied'; b.classList.add('done'); setTimeout(function () { b.textContent = 'Copy'; b.classList.remove('done'); }, 1500); };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(input.value).then(done, function () { input.select(); document.execCommand('copy'); done(); });
      else { input.select(); document.execCommand('copy'); done(); }
    } }, 'Copy');
  }

  function urlBox(label, url, hint) {
    var input = el('input', { readonly: true, value: url, title: url, 'aria-label': label + ' widget URL', onfocus: function (ev) { ev.target.select(); } });
    return el('div', { class: 'urlbox' }, el('span', { class: 'url-label', title: hint, text: label }), input, copyButton(input));
  }

  // The preview renders the widget at the size of an OBS browser source and
  // scales it down to the panel.
  var OBS_W = 600, OBS_H = 200;
  function fitPreview() {
    var stage = $('.stage'), frame = $('#preview-frame');
    if (!stage) return;
    var k = Math.min(1, stage.clientWidth / OBS_W);
    frame.style.width = OBS_W + 'px';
    frame.style.height = OBS_H + 'px';
    frame.style.transform = 'scale(' + k + ')';
    stage.style.height = Math.round(OBS_H * k) + 'px';
  }

  function preview(r) {
    selected = r.product + '/' + r.influencer_id;
    var src = r.widget_url + (r.widget_url.indexOf('?') < 0 ? '?' : '&') + 'preview=1';
    var frame = $('#preview-frame');
    if (frame.getAttribute('src') !== src) frame.setAttribute('src', src);
    $('#preview-name').textContent = r.influencer_id + ' · ' + r.product + (state.campaign && state.campaign !== NO_CAMPAIGN ? ' · campaign ' + state.campaign : '');
    if (previewed !== r.product) {
      previewed = r.product;
      showNote();
      loadWidgets(); // settings change live: fresh ones for each product previewed
    }
    $$('#influencers tr[data-key]').forEach(function (tr) { tr.classList.toggle('selected', tr.dataset.key === selected); });
  }

  function renderInfluencers(d) {
    showRange(d.filter);
    var wrap = $('#influencers');
    $('#page-info').textContent = d.rows.length ? 'rows ' + (d.offset + 1) + '–' + (d.offset + d.rows.length) : '';
    $('#prev').disabled = d.offset === 0;
    $('#next').disabled = !d.more;
    if (!d.rows.length) { wrap.textContent = ''; wrap.appendChild(el('div', { class: 'empty', text: 'No influencer has events for these filters yet.' })); return; }
    var max = Math.max.apply(null, d.rows.map(function (r) { return r.counted; }));
    var tbody = el('tbody');
    d.rows.forEach(function (r) {
      var key = r.product + '/' + r.influencer_id;
      tbody.appendChild(el('tr', { 'data-key': key, class: key === selected ? 'selected' : null },
        keyCell('influencer_id', r.influencer_id, r.product),
        countCell(r.counted, max), dupCell(r),
        el('td', { class: 'num muted', text: r.last_day ? fmtDay(r.last_day, true) : '—' }),
        el('td', { class: 'links' },
          urlBox('OBS', r.widget_url, 'The widget on this installation\'s widget server: paste it into an OBS browser source'),
          urlBox('Public', r.widget_public_url, 'The public form of the link, on the StreamTools domain')),
        el('td', null, el('button', { type: 'button', class: 'small', title: 'Show this widget in the preview', onclick: function () { preview(r); } }, '▶ Preview'))));
    });
    var head = el('tr');
    ['Influencer', 'Counted', 'Duplicates', 'Last counted', 'Widget links', ''].forEach(function (h, i) {
      head.appendChild(el('th', { class: i > 0 && i < 4 ? 'num' : null, text: h }));
    });
    wrap.textContent = '';
    wrap.appendChild(el('table', null, el('thead', null, head), tbody));
    // Show the end of each link, where the influencer and campaign are.
    $$('.urlbox input', wrap).forEach(function (i) { i.scrollLeft = i.scrollWidth; });
    if (!selected) preview(d.rows[0]);
  }

  var seq = 0, timer = null;
  function refresh() {
    var my = ++seq;
    var url = page === 'overview' ? '/api/v1/overview?' + query() : '/api/v1/views/influencers?' + query({ limit: PAGE, offset: offset });
    return getJSON(url).then(function (d) {
      if (my !== seq) return;
      showError(null);
      if (page === 'overview') renderOverview(d); else renderInfluencers(d);
      setLive(true);
    }, function (err) {
      if (my !== seq) return;
      setLive(false);
      if (err.field) showError(err);
    });
  }
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      if (document.hidden) return; // visibilitychange restarts the loop
      refresh().then(schedule, schedule);
    }, REFRESH);
  }
  function refreshNow() { refresh().then(schedule, schedule); }
  document.addEventListener('visibilitychange', function () { if (!document.hidden) refreshNow(); });
  var resizeTimer;
  window.addEventListener('resize', function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(refreshNow, 200); });

  if (page === 'influencers') {
    fitPreview();
    window.addEventListener('resize', fitPreview);
    $('#prev').addEventListener('click', function () { offset = Math.max(0, offset - PAGE); refreshNow(); });
    $('#next').addEventListener('click', function () { offset += PAGE; refreshNow(); });
  }
  syncURL();
  initFilters();
  refreshNow();
})();
