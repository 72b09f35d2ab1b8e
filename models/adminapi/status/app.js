// driftline status page: plain JavaScript and SVG, no library, no build
// step. It reads the admin API under /api/v1 every 2 s with the bearer
// token the operator gives it, and acts through the same API (promote,
// rollback, pause, resume, abort) when the token's role allows it.
'use strict';

const REFRESH_MS = 2000;
const ROLE = { viewer: 1, operator: 2, admin: 3 };
const TOKEN_KEY = 'driftline.token';
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#a16207', '#db2777'];
const state = { token: '', who: null, role: 0, cards: new Map(), busy: false };

// ---- DOM helpers (text is always set as text, never parsed as HTML)

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const k of kids.flat(Infinity)) if (k != null && k !== false) el.append(k instanceof Node ? k : String(k));
  return el;
}

function s(tag, attrs, ...kids) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  setAttrs(el, attrs);
  for (const k of kids.flat(Infinity)) if (k != null && k !== false) el.append(k instanceof Node ? k : String(k));
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
}

const $ = (sel) => document.querySelector(sel);
const fill = (el, ...kids) => { el.replaceChildren(...kids.flat(Infinity).filter((k) => k != null && k !== false)); return el; };

function num(x, digits = 3) {
  if (x == null || Number.isNaN(x)) return '–';
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  return Number(x).toPrecision(digits).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}
const int = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));
const clock = (t) => new Date(t).toISOString().slice(11, 19);
const stamp = (t) => new Date(t).toISOString().replace('T', ' ').slice(0, 19) + 'Z';

// ---- API

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  if (body) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, cache: 'no-store', body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const e = new Error((data && data.error) || `${r.status} ${r.statusText}`);
    e.status = r.status;
    throw e;
  }
  return data;
}

const optional = (p) => p.catch((e) => (e.status === 404 ? null : Promise.reject(e)));

// ---- token

function initToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  state.token = sessionStorage.getItem(TOKEN_KEY) || '';
  $('#login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('#token').value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    state.token = t;
    $('#token').value = '';
    resetCards();
    refresh();
  });
  $('#token-clear').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = '';
    resetCards();
    refresh();
  });
}

function resetCards() {
  state.cards.clear();
  fill($('#model-list'));
}

function showError(msg) {
  const el = $('#error');
  el.hidden = !msg;
  el.textContent = msg || '';
}

// ---- refresh

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    try {
      state.who = await api('GET', '/api/v1/whoami');
    } catch (e) {
      if (e.status === 401) {
        state.who = null;
        state.role = 0;
        fill($('#who'), 'not signed in');
        showError('Paste a bearer token (viewer or higher) above, or open the URL the server printed.');
        return;
      }
      throw e;
    }
    state.role = ROLE[state.who.role] || 0;
    fill($('#who'), `${state.who.name} (${state.who.role})`);
    const [status, history, list, audit, drift] = await Promise.all([
      api('GET', '/api/v1/status'),
      api('GET', '/api/v1/history'),
      api('GET', '/api/v1/models'),
      api('GET', '/api/v1/audit?order=newest&limit=50'),
      optional(api('GET', '/api/v1/drift')),
    ]);
    renderPipeline(status, history);
    renderAccuracy(history);
    await renderModels(list.models || []);
    renderDrift(drift);
    renderAudit(audit.events || []);
    $('#updated').textContent = 'updated ' + clock(Date.now()) + ' UTC';
    showError('');
  } catch (e) {
    showError('refresh failed: ' + e.message);
  } finally {
    state.busy = false;
  }
}

// ---- data plane

function renderPipeline(st, history) {
  $('#pipeline-name').textContent = st.pipeline ? '· ' + st.pipeline : '';
  const ready = $('#ready');
  ready.textContent = st.ready ? 'ready' : 'not ready';
  ready.className = 'badge ' + (st.ready ? 'ok' : 'bad');
  const kpi = (label, value, sub) => h('div', { class: 'kpi' }, h('span', { class: 'muted' }, label), h('b', {}, value), sub ? h('span', { class: 'muted' }, sub) : null);
  fill($('#kpis'),
    kpi('events in/s', num(st.in_per_s), int(st.in) + ' total'),
    kpi('predictions/s', num(st.out_per_s), int(st.out) + ' total'),
    kpi('DLQ/s', num(st.dlq_per_s), int(st.dlq) + ' total'),
    kpi('duplicates/s', num(st.duplicates_per_s), int(st.duplicates) + ' total'),
    kpi('lag', int(st.lag), 'records'),
    kpi('labels joined', int(st.labels), 'champion v' + (st.champion_version || '–')));
  const pts = history.points || [];
  fill($('#rates-chart'), lineChart([
    { name: 'in/s', color: COLORS[0], points: pts.map((p) => [p.at, p.in_per_s]) },
    { name: 'predictions/s', color: COLORS[2], points: pts.map((p) => [p.at, p.out_per_s]) },
    { name: 'DLQ/s', color: COLORS[1], points: pts.map((p) => [p.at, p.dlq_per_s]) },
  ], { width: 1200, height: 200, fmt: (v) => num(v, 2) }));
  fill($('#partitions'),
    h('tr', {}, h('th', {}, 'topic'), h('th', { class: 'num' }, 'partition'), h('th', { class: 'num' }, 'events in'), h('th', { class: 'num' }, 'in/s'), h('th', { class: 'num' }, 'lag')),
    (st.partitions || []).map((p) => {
      const input = p.topic === st.input_topic; // the labels plane's partitions show their lag only
      return h('tr', {}, h('td', {}, p.topic), h('td', { class: 'num' }, p.partition), h('td', { class: 'num' }, input ? int(p.in) : '–'),
        h('td', { class: 'num' }, input ? num(p.in_per_s) : '–'), h('td', { class: 'num' }, int(p.lag)));
    }));
  const reasons = st.dlq_reasons || [];
  const top = Math.max(1e-9, ...reasons.map((r) => r.per_s || 0));
  fill($('#dlq'),
    h('tr', {}, h('th', {}, 'reason'), h('th', { class: 'num' }, 'total'), h('th', { class: 'num' }, 'per s'), h('th', {}, '')),
    reasons.length ? reasons.map((r) => h('tr', {}, h('td', {}, r.reason), h('td', { class: 'num' }, int(r.total)), h('td', { class: 'num' }, num(r.per_s)),
      h('td', {}, bar((r.per_s || 0) / top)))) : h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'no DLQ records')));
}

function bar(frac) {
  const d = h('div', {});
  d.style.width = Math.round(Math.max(0, Math.min(1, frac)) * 100) + '%';
  const p = h('div', { class: 'progress' }, d);
  p.style.minWidth = '80px';
  return p;
}

// ---- charts

// lineChart draws series of [time, value] points on a shared time axis.
function lineChart(series, opts) {
  const W = opts.width || 640, H = opts.height || 180, L = 48, R = 10, T = 8, B = 22;
  const all = series.flatMap((sr) => sr.points).filter((p) => p[1] != null && !Number.isNaN(p[1]));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  if (!all.length) {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no data yet'));
    return h('div', {}, svg);
  }
  const ts = all.map((p) => Date.parse(p[0]));
  const t0 = Math.min(...ts), t1 = Math.max(t0 + 1000, ...ts);
  let y0 = opts.yMin != null ? opts.yMin : Math.min(...all.map((p) => p[1]));
  let y1 = opts.yMax != null ? opts.yMax : Math.max(...all.map((p) => p[1]));
  if (y1 - y0 < 1e-9) { y1 += 1; y0 = Math.max(opts.yFloor != null ? opts.yFloor : -Infinity, y0 - 1); }
  const x = (t) => L + ((Date.parse(t) - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#e5e7eb' }),
      s('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end' }, opts.fmt ? opts.fmt(v) : num(v)));
  }
  svg.append(s('text', { x: L, y: H - 6 }, clock(t0)), s('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, clock(t1) + ' UTC'));
  for (const sr of series) {
    const pts = sr.points.filter((p) => p[1] != null && !Number.isNaN(p[1]));
    if (!pts.length) continue;
    svg.append(s('polyline', { points: pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' '), fill: 'none', stroke: sr.color, 'stroke-width': 1.8 }));
    if (pts.length === 1) svg.append(s('circle', { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 2.5, fill: sr.color }));
  }
  const legend = h('div', { class: 'legend' }, series.map((sr) => { const i = h('i', {}); i.style.background = sr.color; return [i, sr.name]; }));
  return h('div', {}, svg, legend);
}

// ---- prequential metrics

function renderAccuracy(history) {
  const vs = history.versions || [];
  const series = (field) => vs.map((v, i) => ({ name: `${v.model} v${v.version}`, color: COLORS[i % COLORS.length], points: v.points.map((p) => [p.at, p[field]]) }));
  fill($('#accuracy-chart'), h('h3', {}, 'accuracy'), lineChart(series('accuracy'), { yMin: 0, yMax: 1, fmt: (v) => v.toFixed(2) }));
  fill($('#logloss-chart'), h('h3', {}, 'log loss'), lineChart(series('logloss'), { yFloor: 0, fmt: (v) => v.toFixed(2) }));
}

// ---- models, rollout and actions

async function renderModels(models) {
  const list = $('#model-list');
  if (!models.length) { fill(list, h('p', { class: 'muted' }, 'no models in the registry')); return; }
  for (const m of models) {
    const [view, roll, audit] = await Promise.all([
      api('GET', '/api/v1/models/' + encodeURIComponent(m.name)),
      optional(api('GET', '/api/v1/models/' + encodeURIComponent(m.name) + '/rollout')),
      api('GET', '/api/v1/audit?order=newest&limit=200&model=' + encodeURIComponent(m.name)),
    ]);
    let card = state.cards.get(m.name);
    if (!card) {
      card = newCard(m.name);
      state.cards.set(m.name, card);
      list.append(card.root);
    }
    updateCard(card, view, roll, audit.events || []);
  }
}

function newCard(name) {
  const c = { name };
  c.head = h('div', {});
  c.rollout = h('div', { class: 'rollout' });
  c.versions = h('table', {});
  c.timeline = h('ol', { class: 'events timeline', 'data-model': name });
  c.root = h('div', { class: 'model', 'data-model': name }, c.head, c.rollout,
    state.role >= ROLE.operator ? (c.actions = newActions(c)) : null,
    h('div', { class: 'cols' }, h('div', {}, h('h3', {}, 'Versions'), c.versions), h('div', {}, h('h3', {}, 'Rollout timeline'), c.timeline)));
  return c;
}

function newActions(c) {
  c.reason = h('input', { type: 'text', placeholder: 'reason (required; goes to the audit log)', 'data-model': c.name, class: 'reason', 'aria-label': 'reason' });
  c.versionSel = h('select', { 'aria-label': 'version' });
  c.aliasSel = h('select', { 'aria-label': 'alias' }, ['champion', 'canary', 'shadow'].map((a) => h('option', { value: a }, a)));
  c.pauseBtn = h('button', { type: 'button', 'data-action': 'pause', onclick: () => act(c, c.paused ? 'resume' : 'pause') }, 'pause');
  c.abortBtn = h('button', { type: 'button', 'data-action': 'abort', class: 'danger', onclick: () => act(c, 'abort') }, 'abort canary');
  c.result = h('span', { class: 'muted' });
  return h('div', { class: 'actions', 'data-model': c.name },
    c.reason,
    h('span', {}, 'promote ', c.versionSel, ' as ', c.aliasSel, ' ', h('button', { type: 'button', 'data-action': 'promote', onclick: () => act(c, 'promote') }, 'promote')),
    h('button', { type: 'button', 'data-action': 'rollback', class: 'danger', onclick: () => act(c, 'rollback') }, 'rollback champion'),
    c.pauseBtn, c.abortBtn, c.result);
}

async function act(c, verb) {
  const reason = c.reason.value.trim();
  if (!reason) { c.result.textContent = 'give a reason first'; c.reason.focus(); return; }
  const body = { reason };
  if (verb === 'promote') { body.version = Number(c.versionSel.value); body.alias = c.aliasSel.value; }
  try {
    const res = await api('POST', `/api/v1/models/${encodeURIComponent(c.name)}/${verb}`, body);
    c.result.textContent = describeResult(verb, res);
    c.result.className = 'ok';
    c.reason.value = '';
  } catch (e) {
    c.result.textContent = `${verb} failed: ${e.message}`;
    c.result.className = 'error';
  }
  refresh();
}

function describeResult(verb, res) {
  if (res && res.alias) return `${verb}: ${res.alias} ${res.from || 'none'} → ${res.to}`;
  if (verb === 'abort') return `aborted v${res.candidate} (${(res.aliases || []).join(', ')})`;
  return verb + ' done';
}

function updateCard(c, view, roll, events) {
  const aliases = Object.entries(view.aliases || {}).sort();
  c.paused = !!view.paused;
  const champion = (view.aliases || {}).champion;
  fill(c.head, h('h3', {}, view.name, ' · champion ', h('span', { class: 'champion', 'data-model': view.name }, champion ? 'v' + champion : 'none')),
    h('div', { class: 'aliases' }, aliases.map(([a, v]) => h('span', { class: 'badge', 'data-alias': a }, `${a} v${v}`)),
      h('span', { class: 'muted' }, view.traffic_set ? ` canary share ${view.canary_percent}%` : ' canary share not set'),
      view.paused ? h('span', { class: 'badge warning' }, `paused by ${view.paused.who}: ${view.paused.why}`) : null));
  fill(c.rollout, rolloutPanel(roll, view), evidencePanel(roll, events));
  fill(c.versions,
    h('tr', {}, h('th', { class: 'num' }, 'version'), h('th', {}, 'aliases'), h('th', {}, 'created'), h('th', {}, 'by'), h('th', { class: 'num' }, 'parent'), h('th', {}, 'metrics at registration')),
    [...(view.versions || [])].reverse().map((v) => h('tr', { 'data-version': v.number },
      h('td', { class: 'num' }, v.number), h('td', {}, (v.aliases || []).join(', ') || '–'), h('td', {}, stamp(v.created)), h('td', {}, v.created_by),
      h('td', { class: 'num' }, v.lineage && v.lineage.parent ? v.lineage.parent : '–'),
      h('td', {}, Object.entries((v.lineage && v.lineage.metrics) || {}).map(([k, x]) => `${k} ${num(x, 4)}`).join(', ') || '–'))));
  fill(c.timeline, timeline(events));
  if (c.actions) {
    const cur = c.versionSel.value;
    fill(c.versionSel, [...(view.versions || [])].reverse().map((v) => h('option', { value: v.number }, 'v' + v.number)));
    if (cur) c.versionSel.value = cur;
    c.pauseBtn.textContent = c.paused ? 'resume' : 'pause';
    c.pauseBtn.dataset.action = c.paused ? 'resume' : 'pause';
    c.abortBtn.disabled = !((view.aliases || {}).canary || (view.aliases || {}).shadow);
  }
}

function rolloutPanel(st, view) {
  const box = h('div', { class: 'phase' });
  if (!st) return fill(box, h('p', { class: 'muted' }, 'This instance runs no governor of this model; the timeline shows the rollout from the audit log.'));
  if (!st.leader) return fill(box, h('p', { class: 'muted' }, 'Another instance holds the governor lease; the timeline shows the rollout from the audit log.'));
  if (!st.candidate) return fill(box, h('p', {}, 'No rollout in progress: champion v' + ((view.aliases || {}).champion || '–') + ' serves all traffic.'));
  const steps = st.steps || [];
  const stepIdx = st.phase === 'shadow' ? -1 : st.phase === 'canary' ? st.step : steps.length;
  const stepBoxes = [h('span', { class: stepIdx === -1 ? 'now' : 'done' }, 'shadow'),
    ...steps.map((p, i) => h('span', { class: i === stepIdx || (i === steps.length - 1 && st.phase === 'promoted') ? 'now' : i < stepIdx ? 'done' : '' }, p === 100 ? 'champion' : p + '%'))];
  const done = st.step_needed ? Math.min(1, st.step_done / st.step_needed) : 0;
  const g = st.gate || {};
  return fill(box,
    h('div', {}, 'candidate ', h('b', {}, 'v' + st.candidate), ' vs champion v' + (st.champion_version || '–'), ' · phase ',
      h('span', { class: 'badge phase-' + st.phase, 'data-phase': st.phase }, st.phase), st.paused ? h('span', { class: 'badge warning' }, 'paused') : null),
    h('div', { class: 'steps' }, stepBoxes),
    h('div', {}, st.phase === 'promoted' ? 'bake: ' : 'this step: ', `${int(st.step_done)} of ${int(st.step_needed)} candidate outcomes`),
    bar(done),
    h('p', { class: 'muted' }, `gate: ${g.metric || '?'} may regress by at most ${num(g.max_delta)} at ${num(g.confidence)} confidence; ` +
      `${int(g.min_samples)} samples per step; failures ${st.failures} of ${g.failure_limit ?? 0} allowed`),
    st.last_what ? h('p', {}, h('b', {}, st.last_what.replace('rollout.', '')), ': ', st.last_reason) : null);
}

// evidencePanel shows the last comparison of the arms: from the governor's
// status when this instance governs, else from the newest audited decision.
function evidencePanel(st, events) {
  let e = st && st.evidence;
  let maxDelta = st && st.gate ? st.gate.max_delta : null;
  if (!e) {
    const d = events.find((x) => x.details && x.details.metric);
    if (d) {
      const dd = d.details;
      e = { metric: dd.metric, candidate: { value: +dd.candidate, n: +dd.candidate_n }, champion: { value: +dd.champion, n: +dd.champion_n },
        improvement: +dd.improvement, lower: +dd.lower, upper: +dd.upper, from: d };
    }
  }
  const box = h('div', { class: 'evidence' }, h('h3', {}, 'Gate evidence'));
  if (!e) return fill(box, box.firstChild, h('p', { class: 'muted' }, 'no measurement yet (both arms need the gate\'s minimum samples)'));
  const row = (k, ...v) => h('tr', {}, h('th', {}, k), ...v.map((x) => h('td', {}, x)));
  box.append(h('table', {},
    row('metric', e.metric, ''),
    row('', 'candidate', 'champion'),
    row('value', num(e.candidate.value, 4), num(e.champion.value, 4)),
    row('n', int(e.candidate.n), int(e.champion.n)),
    row('improvement', num(e.improvement, 3), `bounds [${num(e.lower, 3)}, ${num(e.upper, 3)}]`)),
  intervalPlot(e, maxDelta));
  if (e.from) box.append(h('p', { class: 'muted' }, `from the audit log, ${e.from.what} at ${stamp(e.from.when)}`));
  return box;
}

function intervalPlot(e, maxDelta) {
  const W = 640, H = 46;
  const lo = Math.min(e.lower, maxDelta != null ? -maxDelta : 0, 0), hi = Math.max(e.upper, 0);
  const pad = (hi - lo) * 0.1 || 0.01;
  const x = (v) => 10 + ((v - (lo - pad)) / (hi - lo + 2 * pad)) * (W - 20);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'improvement and its bounds' },
    s('line', { x1: x(0), x2: x(0), y1: 4, y2: 30, stroke: '#9ca3af' }),
    s('text', { x: x(0), y: 42, 'text-anchor': 'middle' }, '0'),
    s('line', { x1: x(e.lower), x2: x(e.upper), y1: 17, y2: 17, stroke: '#2563eb', 'stroke-width': 4 }),
    s('circle', { cx: x(e.improvement), cy: 17, r: 4, fill: '#1d4ed8' }));
  if (maxDelta != null) {
    svg.append(s('line', { x1: x(-maxDelta), x2: x(-maxDelta), y1: 4, y2: 30, stroke: '#b91c1c', 'stroke-dasharray': '3 2' }),
      s('text', { x: x(-maxDelta), y: 42, 'text-anchor': 'middle', fill: '#b91c1c' }, '−max_delta'));
  }
  return svg;
}

// timelineWhats are the audit events of a rollout's story (holds are left out).
function describe(ev) {
  const d = ev.details || {};
  const v = ev.version ? 'v' + ev.version : '';
  const measured = d.metric ? ` [${d.metric}: candidate ${num(+d.candidate, 4)} on ${d.candidate_n}, champion ${num(+d.champion, 4)} on ${d.champion_n}]` : '';
  switch (ev.what) {
    case 'register': return ['register', `${v} registered by ${ev.who}: ${ev.why || ''}`];
    case 'alias.set': {
      const kind = d.alias === 'champion' ? (d.action === 'rollback' ? 'rollback' : 'promote') : d.alias === 'canary' ? 'canary' : 'alias';
      return [kind, `${d.alias} → v${d.to}` + (d.from && d.from !== '0' ? ` (was v${d.from})` : '') + ` by ${ev.who}` + (d.action ? ` (${d.action})` : '')];
    }
    case 'alias.delete': return ['alias', `${d.alias} removed from v${d.from} by ${ev.who}`];
    case 'traffic.set': return ['canary', `canary traffic ${d.from}% → ${d.to}% (by ${ev.who})`];
    case 'rollout.advance': return ['canary', `advance ${v} to canary step ${Number(d.step) + 1} (${d.percent}%): ${ev.why}${measured}`];
    case 'rollout.promote': return ['promote', `promote ${v}: ${ev.why}${measured}`];
    case 'rollout.override.promote': return ['promote', `promote ${v} by override: ${ev.why}`];
    case 'rollout.stable': return ['stable', `${v} stable: ${ev.why}`];
    case 'rollout.rollback': case 'rollout.override.rollback': return ['rollback', `rollback ${v}: ${ev.why}${measured}`];
    case 'rollout.abort': return ['rollback', `${v} aborted by ${ev.who}: ${ev.why}`];
    case 'rollout.pause': case 'rollout.resume': return ['alias', `${ev.what.slice(8)} by ${ev.who}: ${ev.why}`];
    case 'retrain.request': return ['register', `retrain requested by ${ev.who}: ${ev.why}`];
    case 'rollout.hold': return null;
  }
  if (ev.what.startsWith('rollout.')) return ['alias', `${ev.what.slice(8)} ${v}: ${ev.why || ''}`];
  return null;
}

function timeline(events) {
  const items = events.map((ev) => [ev, describe(ev)]).filter(([, d]) => d);
  if (!items.length) return h('li', { class: 'muted' }, 'no rollout events yet');
  return items.map(([ev, [kind, text]]) => h('li', { class: kind, 'data-what': ev.what }, h('time', { datetime: ev.when }, clock(ev.when)), text));
}

// ---- drift

function renderDrift(drift) {
  if (!drift) {
    fill($('#alerts-timeline'));
    fill($('#alerts'), h('li', { class: 'muted' }, 'no drift monitor (the spec has no alerts topic)'));
    fill($('#drift-subjects'));
    return;
  }
  const alerts = drift.alerts || [];
  fill($('#alerts-timeline'), alertsChart(alerts));
  fill($('#alerts'), alerts.length ? [...alerts].reverse().map((a) => h('li', { class: a.state, 'data-subject': a.subject },
    h('time', { datetime: a.last_seen }, clock(a.last_seen)),
    `${a.state}: ${a.detector} on "${a.subject}" (statistic ${num(a.statistic, 3)}, threshold ${num(a.threshold, 3)}, window ${int(a.window)}, model ${a.model_version})`))
    : h('li', { class: 'muted' }, 'no alerts'));
  const r = drift.report || {};
  $('#drift-summary').textContent = `${r.rounds || 0} rounds of ${int(r.window_size)} rows; KS tests corrected by ${r.correction === 'bonferroni' ? 'Bonferroni' : 'Benjamini-Hochberg'} at ${num(r.alpha)}; a rejected subject with PSI ≥ ${num(r.min_psi)} is a drift. Most drifted first.`;
  fill($('#drift-subjects'), (r.subjects || []).map(subjectCard));
}

function alertsChart(alerts) {
  const W = 1200, rows = [...new Set(alerts.map((a) => a.subject))];
  const H = 26 + rows.length * 18;
  const svg = s('svg', { viewBox: `0 0 ${W} ${Math.max(H, 40)}`, role: 'img' });
  if (!alerts.length) { svg.append(s('text', { x: W / 2, y: 24, 'text-anchor': 'middle' }, 'no alerts')); return svg; }
  const ts = alerts.map((a) => Date.parse(a.last_seen));
  const t0 = Math.min(...ts), t1 = Math.max(t0 + 1000, Date.now());
  const x = (t) => 90 + ((Date.parse(t) - t0) / (t1 - t0)) * (W - 100);
  const color = { drift: '#b91c1c', warning: '#b45309', resolved: '#15803d' };
  rows.forEach((subj, i) => svg.append(s('text', { x: 84, y: 18 + i * 18, 'text-anchor': 'end' }, subj),
    s('line', { x1: 90, x2: W - 10, y1: 14 + i * 18, y2: 14 + i * 18, stroke: '#e5e7eb' })));
  for (const a of alerts) {
    const i = rows.indexOf(a.subject);
    svg.append(s('circle', { cx: x(a.last_seen), cy: 14 + i * 18, r: 5, fill: color[a.state] || '#6b7280' },
      s('title', {}, `${a.state} ${a.detector} ${a.subject} at ${stamp(a.last_seen)}`)));
  }
  svg.append(s('text', { x: 90, y: H - 4 }, clock(t0)), s('text', { x: W - 10, y: H - 4, 'text-anchor': 'end' }, clock(t1) + ' UTC'));
  return svg;
}

function subjectCard(v) {
  const card = h('div', { class: 'subject ' + v.state, 'data-subject': v.subject, 'data-state': v.state },
    h('h4', {}, v.subject, h('span', { class: 'badge ' + v.state }, v.state), h('span', { class: 'muted' }, v.feature ? 'feature' : 'prediction score')));
  if (v.profiling) {
    card.append(h('p', { class: 'muted' }, `taking the reference sample: ${int(v.reference_sampled)} of ${int(v.reference_size)} values`));
    return card;
  }
  card.append(histogram(v), h('div', { class: 'legend' }, legendKey('#94a3b8', 'reference'), legendKey('#2563eb', v.live ? 'current (round in progress)' : 'current (last round)')),
    h('dl', {},
      h('dt', {}, 'PSI'), h('dd', {}, num(v.psi)), h('dt', {}, 'KS'), h('dd', {}, num(v.ks)),
      h('dt', {}, 'p-value'), h('dd', {}, num(v.p_value)), h('dt', {}, 'corrected p'), h('dd', { class: 'corrected' }, num(v.corrected_p_value)),
      h('dt', {}, 'cut-off'), h('dd', {}, num(v.cutoff)), h('dt', {}, 'tested'), h('dd', {}, v.evaluated_at ? clock(v.evaluated_at) : '–')));
  return card;
}

function legendKey(color, text) { const i = h('i', {}); i.style.background = color; return h('span', {}, i, text); }

function histogram(v) {
  const W = 300, H = 90, B = 14;
  const ref = v.reference || [], cur = v.current || [];
  const tot = (a) => a.reduce((x, y) => x + y, 0) || 1;
  const rp = ref.map((c) => c / tot(ref)), cp = cur.map((c) => c / tot(cur));
  const top = Math.max(1e-9, ...rp, ...cp);
  const n = ref.length, bw = (W - 4) / Math.max(n, 1);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'reference and current histograms' });
  for (let i = 0; i < n; i++) {
    const hr = (rp[i] / top) * (H - B - 4), hc = ((cp[i] || 0) / top) * (H - B - 4);
    svg.append(s('rect', { x: 2 + i * bw + 1, y: H - B - hr, width: bw / 2 - 1, height: hr, fill: '#94a3b8' }),
      s('rect', { x: 2 + i * bw + bw / 2, y: H - B - hc, width: bw / 2 - 1, height: hc, fill: '#2563eb' }));
  }
  const edges = v.edges || [];
  if (edges.length) {
    svg.append(s('text', { x: 2 + bw, y: H - 2, 'text-anchor': 'middle' }, num(edges[0], 2)),
      s('text', { x: 2 + (n - 1) * bw, y: H - 2, 'text-anchor': 'middle' }, num(edges[edges.length - 1], 2)));
  }
  return svg;
}

// ---- audit

function renderAudit(events) {
  fill($('#audit-log'),
    h('tr', {}, h('th', {}, 'time (UTC)'), h('th', {}, 'who'), h('th', {}, 'what'), h('th', {}, 'model'), h('th', { class: 'num' }, 'version'), h('th', {}, 'why'), h('th', {}, 'details')),
    [...events].reverse().map((e) => h('tr', { 'data-what': e.what }, h('td', {}, stamp(e.when)), h('td', {}, e.who), h('td', {}, e.what), h('td', {}, e.model || '–'),
      h('td', { class: 'num' }, e.version || '–'), h('td', {}, e.why || ''),
      h('td', { class: 'muted' }, Object.entries(e.details || {}).sort().map(([k, v]) => `${k}=${v}`).join(' ')))));
}

initToken();
refresh();
setInterval(refresh, REFRESH_MS);
