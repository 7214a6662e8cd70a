// The hothost dashboard: polls the admin API it was served from (status,
// versions, usage), draws the versions on a timeline and each version's
// request rate, error rate and p99 as live charts, and offers activate,
// rollback and pin behind a confirmation. Plain JavaScript, no library:
// every text goes in through textContent, never as HTML.
'use strict';

const params = new URLSearchParams(location.search);
const POLL_MS = Math.max(200, Number(params.get('poll')) || 2000);
const CHART_SECONDS = 300;
const SVG = 'http://www.w3.org/2000/svg';
const PALETTE = ['#2f6fdb', '#d9480f', '#2b8a3e', '#9c36b5', '#c2255c', '#0b7285', '#e67700', '#5c7cfa', '#495057'];

const S = {
  status: null,
  versions: [],
  prevUsage: null,
  series: new Map(), // "module version" -> [{t, rate, errors, p99}]
  colours: new Map(),
  observed: new Map(), // module -> [{version, from, to}] activations seen while the page is open
  pid: 0,
  tableSig: '',
  rows: new Map(), // "module version file" -> the row's counter cells
  pending: null, // the action awaiting confirmation
};

// ---- the admin API ----

async function api(method, path) {
  const r = await fetch(path, {
    method, cache: 'no-store', credentials: 'same-origin',
    headers: { 'Accept': 'application/json', 'X-Hothost-Dashboard': '1' },
  });
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch (e) { body = { error: text.trim() }; }
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  return body;
}

async function poll() {
  try {
    const [st, vs, us] = await Promise.all([api('GET', '/v1/status'), api('GET', '/v1/versions'), api('GET', '/v1/usage')]);
    if (S.pid && st.pid !== S.pid) { // another process: its counters start again
      S.prevUsage = null;
    }
    S.pid = st.pid;
    S.status = st;
    S.versions = vs || [];
    observe(st, Date.now() / 1000);
    addUsage(us);
    render();
    setConn('ok', 'live');
  } catch (e) {
    setConn('err', 'no answer: ' + e.message);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function setConn(cls, text) {
  const el = document.getElementById('conn');
  el.className = 'conn ' + cls;
  el.textContent = text;
  if (cls === 'ok') document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}

// ---- numbers ----

const key = (v) => `${v.module} ${v.version}`;

// observe records which version of each module is active at this poll, so
// that swaps made while the page is open show as separate spans even when
// a version is activated more than once.
function observe(st, now) {
  for (const [module, version] of Object.entries(st.modules || {})) {
    const list = S.observed.get(module) || [];
    const last = list[list.length - 1];
    if (last && last.version === version) {
      last.to = now;
    } else {
      if (last) last.to = now;
      list.push({ version, from: now, to: now });
    }
    S.observed.set(module, list);
  }
}

// addUsage turns two readings of the cumulative counters into one point per
// version: requests and errors per second, and the p99 of the requests in
// between (from the difference of the histograms).
function addUsage(us) {
  const t = Date.parse(us.at) / 1000;
  const prev = S.prevUsage;
  S.prevUsage = us;
  if (!prev) return;
  const dt = t - Date.parse(prev.at) / 1000;
  if (!(dt > 0)) return;
  const before = new Map(prev.versions.map((v) => [key(v), v]));
  for (const v of us.versions) {
    const p = before.get(key(v));
    const dReq = v.requests - (p ? p.requests : 0);
    const dErr = v.errors - (p ? p.errors : 0);
    if (dReq < 0 || dErr < 0) continue; // counters went back: a new process
    const pts = S.series.get(key(v)) || [];
    pts.push({ t, rate: dReq / dt, errors: dErr / dt, p99: quantile(0.99, v.latency, p && p.latency) });
    while (pts.length && pts[0].t < t - CHART_SECONDS) pts.shift();
    if (pts.every((q) => q.rate === 0)) { // idle for the whole window: off the charts
      S.series.delete(key(v));
      continue;
    }
    S.series.set(key(v), pts);
  }
}

// quantile estimates the q-quantile of the requests counted between two
// readings of a cumulative histogram, interpolating inside the bucket as
// Prometheus' histogram_quantile does. null when there were none.
function quantile(q, cur, prev) {
  const base = (i) => (prev && prev.buckets && prev.buckets[i]) || 0;
  const n = cur.count - ((prev && prev.count) || 0);
  if (!(n > 0)) return null;
  const rank = q * n;
  let lo = 0, below = 0;
  const bounds = cur.bounds || [];
  for (let i = 0; i < bounds.length; i++) {
    const c = cur.buckets[i] - base(i);
    if (c >= rank) {
      const inside = c - below;
      return lo + (bounds[i] - lo) * (inside > 0 ? (rank - below) / inside : 1);
    }
    lo = bounds[i];
    below = c;
  }
  return lo; // beyond the last bound: say the last bound
}

function colour(k) {
  if (!S.colours.has(k)) S.colours.set(k, PALETTE[S.colours.size % PALETTE.length]);
  return S.colours.get(k);
}

// ---- drawing helpers ----

function el(tag, attrs, text) {
  const e = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : String(v));
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

function ago(seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : '');
const secs = (iso) => (iso ? Date.parse(iso) / 1000 : 0);

// ---- status cards ----

function renderStatus(st, now) {
  const set = (id, text, warn) => {
    const e = document.getElementById(id);
    e.textContent = text;
    e.classList.toggle('warn', !!warn);
  };
  set('st-players', `${st.state.players} / ${st.state.capacity}`);
  set('st-connections', String(st.connections));
  set('st-lanes', String(st.lanes));
  set('st-config', String(st.config.version), !!st.config.error);
  const last = secs(st.snapshot.last);
  set('st-snapshot', last ? ago(now - last) : 'none yet', !!st.snapshot.error);
  set('st-uptime', st.uptime);
  set('st-running', `${(st.running || []).length} / ${(st.stuck || []).length}`, (st.stuck || []).length > 0);
  const c = st.last_crash;
  set('st-crash', c ? crashText(c) : 'none since the state was created', !!c);
  const notes = [];
  if (st.draining) notes.push('draining: new requests are refused');
  if (st.config.error) notes.push('config refused: ' + st.config.error);
  if (st.snapshot.error) notes.push('snapshot failing: ' + st.snapshot.error);
  for (const s of st.stuck || []) notes.push(`stuck: ${s.module} ${s.version} ${s.msg} for player ${s.player} since ${when(s.since)}`);
  document.getElementById('st-notes').textContent = notes.join(' · ');
  document.title = `hothost ${st.clients} (pid ${st.pid})`;
}

function crashText(c) {
  let t = `${when(c.noticed)}: ${c.exit || 'unclean exit'}`;
  if (c.module) t += ` — ${c.module} ${c.version}${c.quarantined ? ' quarantined' : ''}`;
  if (c.reason) t += ` (${c.reason})`;
  return t;
}

// ---- timeline ----

// activeSpans infers when each version of a module was active: a module
// has one active version at a time, so a version's last activation lasts
// until the next activation of another one (or now, for the active one).
// Spans observed while the page is open are added.
function activeSpans(module, rows, now) {
  const acts = rows.filter((v) => v.activated_at).map((v) => ({ version: v.version, from: secs(v.activated_at) }))
    .sort((a, b) => a.from - b.from);
  const activeNow = rows.some((v) => v.state === 'active');
  const spans = acts.map((a, i) => ({
    version: a.version, from: a.from,
    // The last activation lasts until now if its version is still active
    // (else when it ended is unknown here: a mark at its start).
    to: i + 1 < acts.length ? acts[i + 1].from : (activeNow ? now : a.from),
  }));
  for (const o of S.observed.get(module) || []) spans.push({ version: o.version, from: o.from, to: o.to });
  return spans;
}

function renderTimeline(versions, now) {
  const svg = document.getElementById('timeline');
  clear(svg);
  const W = Math.max(svg.clientWidth || 900, 400);
  const LABEL = 150, PAD = 16, ROW = 22;
  const modules = [...new Set(versions.map((v) => v.module || '(unnamed)'))].sort();
  const win = Number(document.getElementById('tl-window').value);
  const earliest = Math.min(now - 60, ...versions.map((v) => secs(v.loaded_at) || now));
  const span = win > 0 ? win : win < 0 ? Math.min(now - earliest, 3600) : now - earliest;
  const t0 = now - span * (win > 0 ? 1 : 1.03);
  const x = (t) => LABEL + ((Math.max(t, t0) - t0) / (now - t0)) * (W - LABEL - PAD);
  let y = 18;
  const rows = [];
  for (const m of modules) {
    const mv = versions.filter((v) => (v.module || '(unnamed)') === m);
    rows.push({ module: m, header: true, y });
    y += ROW;
    for (const v of mv) { rows.push({ module: m, v, y }); y += ROW; }
    y += 6;
  }
  const H = y + 18;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('height', H);
  // Time grid: about six ticks.
  const step = niceStep((now - t0) / 6);
  for (let t = Math.ceil(t0 / step) * step; t <= now; t += step) {
    svg.appendChild(el('svg:line', { class: 'grid', x1: x(t), x2: x(t), y1: 8, y2: H - 16 }));
    svg.appendChild(el('svg:text', { x: x(t), y: H - 4, 'text-anchor': 'middle' }, new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: step < 60 ? '2-digit' : undefined })));
  }
  svg.appendChild(el('svg:line', { class: 'now', x1: x(now), x2: x(now), y1: 8, y2: H - 16 }));
  const spans = new Map(modules.map((m) => [m, activeSpans(m, versions.filter((v) => v.module === m), now)]));
  for (const r of rows) {
    if (r.header) {
      const active = (S.status && S.status.modules && S.status.modules[r.module]) || 'none';
      svg.appendChild(el('svg:text', { class: 'module-label', x: 6, y: r.y + 14 }, `${r.module} (active ${active})`));
      continue;
    }
    const v = r.v;
    const g = el('svg:g', { class: 'tl-row', 'data-module': v.module, 'data-version': v.version, 'data-state': v.state });
    g.appendChild(el('svg:title', {}, versionTitle(v)));
    g.appendChild(el('svg:text', { class: 'version-label', x: 18, y: r.y + 14 }, v.version || v.file));
    const from = secs(v.loaded_at) || now;
    g.appendChild(el('svg:rect', { class: 'tl-span', x: x(from), y: r.y + 8, width: Math.max(2, x(now) - x(from)), height: 6, rx: 2 }));
    for (const s of spans.get(v.module) || []) {
      if (s.version !== v.version || s.to < t0) continue;
      g.appendChild(el('svg:rect', { class: 'tl-active', x: x(s.from), y: r.y + 4, width: Math.max(3, x(s.to) - x(s.from)), height: 14, rx: 2 }));
    }
    g.appendChild(el('svg:circle', { class: 'tl-mark', cx: x(from), cy: r.y + 11, r: 4 }));
    svg.appendChild(g);
  }
}

function versionTitle(v) {
  const lines = [`${v.module} ${v.version}: ${v.state}${v.pinned ? ' (pinned)' : ''}`];
  if (v.reason) lines.push(v.reason);
  if (v.loaded_at) lines.push('loaded ' + when(v.loaded_at));
  if (v.activated_at) lines.push('last activated ' + when(v.activated_at));
  if (v.file) lines.push(v.file);
  return lines.join('\n');
}

function niceStep(raw) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
  return steps.find((s) => s >= raw) || Math.ceil(raw / 86400) * 86400;
}

// ---- charts ----

function renderChart(id, field, scale, now) {
  const svg = document.getElementById(id);
  clear(svg);
  const W = Math.max(svg.clientWidth || 320, 240), H = 160, L = 44, R = 8, T = 8, B = 20;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('height', H);
  // The last CHART_SECONDS, or less while the page is young, so that the
  // first minute is not a sliver at the right edge.
  let first = now;
  for (const pts of S.series.values()) if (pts.length) first = Math.min(first, pts[0].t);
  const span = Math.min(CHART_SECONDS, Math.max(30, now - first));
  const t0 = now - span;
  let max = 0;
  for (const pts of S.series.values()) for (const p of pts) if (p[field] != null) max = Math.max(max, p[field] * scale);
  max = max > 0 ? max * 1.15 : 1;
  const x = (t) => L + ((t - t0) / span) * (W - L - R);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    svg.appendChild(el('svg:line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    svg.appendChild(el('svg:text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
  }
  const tick = niceStep(span / 5);
  for (let back = 0; back <= span; back += tick) {
    const label = back === 0 ? 'now' : back % 60 === 0 ? `-${back / 60}m` : `-${back}s`;
    svg.appendChild(el('svg:text', { x: x(now - back), y: H - 4, 'text-anchor': back === 0 ? 'end' : 'middle' }, label));
  }
  for (const [k, pts] of S.series) {
    let d = '', pen = 'M';
    for (const p of pts) {
      if (p[field] == null) { pen = 'M'; continue; }
      d += `${pen}${x(p.t).toFixed(1)},${y(p[field] * scale).toFixed(1)}`;
      pen = 'L';
    }
    if (!d) continue;
    const path = el('svg:path', { class: 'series', d, stroke: colour(k), 'data-series': k });
    path.appendChild(el('svg:title', {}, k));
    svg.appendChild(path);
  }
}

function fmt(v) {
  if (v === 0) return '0';
  if (v >= 100) return v.toFixed(0);
  if (v >= 1) return v.toFixed(1);
  return v.toPrecision(2);
}

function renderLegend() {
  const ul = document.getElementById('series-legend');
  clear(ul);
  for (const [k, pts] of S.series) {
    const last = pts[pts.length - 1];
    const li = el('li', { 'data-series': k });
    const sw = el('span', { class: 'swatch' });
    sw.style.background = colour(k);
    li.appendChild(sw);
    li.appendChild(document.createTextNode(`${k}: ${fmt(last.rate)} req/s, ${fmt(last.errors)} err/s` + (last.p99 != null ? `, p99 ${fmt(last.p99 * 1000)} ms` : '')));
    ul.appendChild(li);
  }
}

// ---- versions table and actions ----

// renderTable rebuilds the table only when a version's state changes;
// otherwise it updates the counters in place, so that a button the user
// (or a test) is about to click is not replaced under the pointer.
function renderTable(versions) {
  const sig = JSON.stringify([versions.map((v) => [v.module, v.version, v.state, v.reason, v.pinned, v.file]), S.status && S.status.modules]);
  if (sig === S.tableSig) {
    for (const v of versions) {
      const row = S.rows.get(`${v.module} ${v.version} ${v.file}`);
      if (row) ['calls', 'errors', 'panics'].forEach((f, i) => { row[i].textContent = String(v[f] || 0); });
    }
    return;
  }
  S.tableSig = sig;
  S.rows = new Map();
  const table = document.getElementById('versions');
  for (const tb of [...table.tBodies]) tb.remove();
  const modules = [...new Set(versions.map((v) => v.module))].sort();
  for (const m of modules) {
    const tb = el('tbody', { 'data-module': m });
    const head = el('tr');
    const th = el('th', { colspan: 9 }, m || '(files not loaded)');
    if (m) {
      const active = S.status && S.status.modules ? S.status.modules[m] : '';
      th.appendChild(el('span', { class: 'active-version' }, active ? `active ${active}` : 'no active version'));
      const rb = el('button', { type: 'button', 'data-action': 'rollback', 'data-module': m, disabled: !active }, 'Roll back');
      rb.addEventListener('click', () => ask({ action: 'rollback', module: m, active }));
      th.appendChild(rb);
    }
    head.appendChild(th);
    tb.appendChild(head);
    for (const v of versions.filter((x) => x.module === m)) tb.appendChild(versionRow(v));
    table.appendChild(tb);
  }
}

function versionRow(v) {
  const tr = el('tr', { 'data-module': v.module, 'data-version': v.version, 'data-state': v.state });
  const state = el('td');
  state.appendChild(el('span', { class: 'badge ' + v.state.replace(' ', '-') }, v.state));
  if (v.pinned) { state.appendChild(document.createTextNode(' ')); state.appendChild(el('span', { class: 'badge pinned' }, 'pinned')); }
  tr.appendChild(el('td', {}, v.version || v.file));
  tr.appendChild(state);
  tr.appendChild(el('td', { class: 'reason', title: v.file }, v.reason || ''));
  tr.appendChild(el('td', {}, when(v.loaded_at)));
  tr.appendChild(el('td', {}, when(v.activated_at)));
  const counters = [v.calls, v.errors, v.panics].map((n) => tr.appendChild(el('td', { class: 'num' }, String(n || 0))));
  S.rows.set(`${v.module} ${v.version} ${v.file}`, counters);
  const td = el('td', { class: 'actions' });
  const loadable = v.module && v.state !== 'rejected';
  const act = el('button', { type: 'button', 'data-action': 'activate', 'data-module': v.module, 'data-version': v.version, disabled: !loadable || v.state === 'active' }, 'Activate');
  act.addEventListener('click', () => ask({ action: 'activate', module: v.module, version: v.version, state: v.state }));
  const pin = v.pinned
    ? el('button', { type: 'button', 'data-action': 'unpin', 'data-module': v.module }, 'Unpin')
    : el('button', { type: 'button', 'data-action': 'pin', 'data-module': v.module, 'data-version': v.version, disabled: !loadable }, 'Pin');
  pin.addEventListener('click', () => ask({ action: v.pinned ? 'unpin' : 'pin', module: v.module, version: v.version, state: v.state }));
  td.appendChild(act);
  td.appendChild(pin);
  tr.appendChild(td);
  return tr;
}

// ask opens the confirmation step; nothing is sent until Confirm.
function ask(a) {
  const text = {
    activate: [`Activate ${a.module} ${a.version}?`, `Every new ${a.module} request runs on ${a.version} from now on (requests already running finish on their version).` + (a.state === 'bad' ? ` It is marked bad: ${a.module} ${a.version} failed before.` : '')],
    rollback: [`Roll back ${a.module}?`, `${a.module} goes back to the version that was active before ${a.active}; ${a.active} is marked rolled back.`],
    pin: [`Pin ${a.module} ${a.version}?`, `${a.version} is activated and stays active: new files no longer take over until you unpin.`],
    unpin: [`Unpin ${a.module}?`, `The newest compatible version of ${a.module} may take over again.`],
  }[a.action];
  S.pending = a;
  document.getElementById('confirm-title').textContent = text[0];
  document.getElementById('confirm-text').textContent = text[1];
  document.getElementById('confirm-ok').textContent = { activate: 'Activate', rollback: 'Roll back', pin: 'Pin', unpin: 'Unpin' }[a.action];
  document.getElementById('confirm').showModal();
}

async function confirmed() {
  const a = S.pending;
  S.pending = null;
  document.getElementById('confirm').close();
  if (!a) return;
  const q = new URLSearchParams({ module: a.module });
  if (a.action === 'activate' || a.action === 'pin') q.set('version', a.version);
  try {
    const res = await api('POST', `/v1/${a.action}?${q}`);
    toast(`${a.action} ${a.module}: done, active ${res.active || ''}`.trim(), false);
  } catch (e) {
    toast(`${a.action} ${a.module} refused: ${e.message}`, true);
  }
  S.tableSig = '';
  refreshNow();
}

let toastTimer = 0;
function toast(text, err) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.className = 'show' + (err ? ' err' : '');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = ''; }, err ? 15000 : 5000);
}

async function refreshNow() {
  try {
    const [st, vs] = await Promise.all([api('GET', '/v1/status'), api('GET', '/v1/versions')]);
    S.status = st;
    S.versions = vs || [];
    observe(st, Date.now() / 1000);
    render();
  } catch (e) {
    setConn('err', 'no answer: ' + e.message);
  }
}

function render() {
  if (!S.status) return;
  const now = Date.now() / 1000;
  renderStatus(S.status, now);
  renderTimeline(S.versions, now);
  renderChart('chart-rate', 'rate', 1, now);
  renderChart('chart-errors', 'errors', 1, now);
  renderChart('chart-p99', 'p99', 1000, now);
  renderLegend();
  renderTable(S.versions);
}

document.getElementById('confirm-ok').addEventListener('click', confirmed);
document.getElementById('confirm-cancel').addEventListener('click', () => { S.pending = null; document.getElementById('confirm').close(); });
// No 'close' listener clears S.pending: that event is queued, and may run
// after the next ask() (a quick cancel and a new click) and eat its action.
// Escape closes the dialog without a word; ask() sets S.pending afresh.
document.getElementById('tl-window').addEventListener('change', render);
window.addEventListener('resize', render);
poll();
