// Lopper's dashboard: plain JavaScript, no framework (three views and a table do not earn one).
// Data: the JSON API under api/ (src/ui/server.rs) and the events stream api/events.
// Charts: uPlot for the history and a trial's curve; the many-curves plot and the parallel
// coordinates are drawn on a canvas here, one path per colour, because 10,000 uPlot series
// (one legend entry and path builder each) would not render in the 2 s the page has.
'use strict';

const COLORS = { Completed: '#2563eb', Pruned: '#d97706', Failed: '#dc2626', Running: '#16a34a', Queued: '#7c3aed', Pending: '#16a34a' };
const PAGE = 50;
const main = document.getElementById('main');
const ui = { page: null, trial: null, logY: false, sort: { key: 'number', dir: 1 }, filter: '', pageNo: 0, charts: [] };
// Tests read timings and state from here.
window.lopper = ui;

// ---------- helpers ----------
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k != null) e.append(k instanceof Node ? k : String(k));
  return e;
}
function fmt(v) {
  if (v == null || Number.isNaN(v)) return '—';
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(6)));
}
function hours(v) { return v == null ? '—' : v.toFixed(2); }
function age(iso) {
  if (!iso) return '—';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 120) return Math.round(s) + 's';
  if (s < 7200) return Math.round(s / 60) + 'm';
  if (s < 172800) return Math.round(s / 3600) + 'h';
  return Math.round(s / 86400) + 'd';
}
async function api(path) {
  const r = await fetch('api/' + path, { credentials: 'same-origin' });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}
async function apiBinary(path) {
  const r = await fetch('api/' + path, { credentials: 'same-origin' });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.arrayBuffer();
}
// The curves' binary layout (src/ui/model.rs `Curves::encode`) → trial number → { steps,
// values }, typed-array views on the one buffer: no parsing, no copy per trial.
function decodeCurves(buf) {
  const [n, m, wide] = new Uint32Array(buf, 0, 3);
  let at = 16;
  const trials = new Float64Array(buf, at, n); at += 8 * n;
  let steps = null;
  if (wide) { steps = new Float64Array(buf, at, m); at += 8 * m; }
  const offsets = new Uint32Array(buf, at, n + 1); at += 4 * (n + 1);
  if (!wide) { steps = new Int32Array(buf, at, m); at += 4 * m; }
  const values = new Float32Array(buf, at, m);
  const curves = new Map();
  for (let i = 0; i < n; i++) {
    const a = offsets[i], b = offsets[i + 1];
    curves.set(trials[i], { steps: steps.subarray(a, b), values: values.subarray(a, b) });
  }
  return curves;
}
function better(dir, a, b) { return dir === 'maximize' ? a > b : a < b; }
function stat(label, value, field) { return el('div', {}, el('span', {}, label), el('b', { 'data-field': field }, value)); }
function crumbs(...parts) {
  const c = document.getElementById('crumbs');
  c.replaceChildren(...parts.flatMap(p => [' / ', p]));
}
function destroyCharts() { ui.charts.forEach(c => c.destroy()); ui.charts = []; }

// ---------- routing ----------
async function route() {
  const t0 = performance.now();
  destroyCharts();
  ui.page = null; ui.trial = null;
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  try {
    if (parts[0] === 'study' && parts.length >= 3) await showStudy(parts[1], parts[2]);
    else if (parts[0] === 'trial' && parts.length >= 4) await showTrial(parts[1], parts[2], Number(parts[3]));
    else await showStudies();
  } catch (e) {
    main.replaceChildren(el('p', { class: 'error', id: 'error' }, String(e.message || e)));
  }
  // Rendered = data fetched, parsed and drawn; measured from the navigation for the page load.
  ui.renderMs = performance.now() - t0;
  ui.loadMs = performance.now();
  document.body.dataset.ready = String((Number(document.body.dataset.ready) || 0) + 1);
}
window.addEventListener('hashchange', route);

// ---------- studies ----------
async function showStudies() {
  const rows = await api('studies');
  crumbs();
  const head = ['namespace', 'study', 'phase', 'best', 'progress', 'running', 'queued', 'pruned', 'failed', 'GPU-h used', 'GPU-h saved', 'age'];
  main.replaceChildren(el('h1', {}, 'Studies'), el('table', { id: 'studies' },
    el('thead', {}, el('tr', {}, head.map(h => el('th', {}, h)))),
    el('tbody', {}, rows.map(s => el('tr', { 'data-study': `${s.namespace}/${s.name}` },
      el('td', { 'data-field': 'namespace' }, s.namespace),
      el('td', { 'data-field': 'name' }, el('a', { href: `#/study/${encodeURIComponent(s.namespace)}/${encodeURIComponent(s.name)}` }, s.name)),
      el('td', { 'data-field': 'phase', class: 'state-' + s.phase }, s.phase || '—'),
      el('td', { 'data-field': 'best', class: 'num' }, fmt(s.best)),
      el('td', { 'data-field': 'progress', class: 'num' }, s.maxTrials ? `${s.completed}/${s.maxTrials}` : String(s.completed)),
      el('td', { 'data-field': 'running', class: 'num' }, s.running),
      el('td', { 'data-field': 'queued', class: 'num' }, s.queued ?? 0),
      el('td', { 'data-field': 'pruned', class: 'num' }, s.pruned),
      el('td', { 'data-field': 'failed', class: 'num' }, s.failed),
      el('td', { 'data-field': 'gpuHours', class: 'num' }, hours(s.gpuHours)),
      el('td', { 'data-field': 'gpuHoursSaved', class: 'num' }, hours(s.gpuHoursSaved)),
      el('td', { 'data-field': 'age' }, age(s.created)))))));
  if (!rows.length) main.append(el('p', { class: 'muted' }, 'No studies.'));
}

// ---------- a study ----------
async function showStudy(ns, name) {
  const mark = timer();
  const path = `studies/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  // The page and the curves at once: the server builds them in parallel.
  const [p, bin] = await Promise.all([api(path), apiBinary(path + '/curves')]);
  mark('fetch');
  ui.page = p;
  ui.byNumber = new Map(p.trials.map(t => [t.number, t]));
  ui.curves = decodeCurves(bin);
  ui.pageNo = 0;
  mark('prepare');
  const s = p.study;
  crumbs(el('span', {}, s.namespace), el('span', {}, s.name));
  const logBox = el('input', { type: 'checkbox', id: 'logy', onchange: e => { ui.logY = e.target.checked; drawStudyCharts(); } });
  logBox.checked = ui.logY;
  main.replaceChildren(
    el('h1', {}, s.name, ' ', el('span', { class: 'state-' + s.phase, 'data-field': 'phase' }, s.phase)),
    el('div', { class: 'stats', id: 'summary' },
      stat(`best ${s.objective} (${s.direction})`, fmt(s.best), 'best'),
      stat('best trial', s.bestTrial ?? '—', 'bestTrial'),
      stat('completed', s.maxTrials ? `${s.completed}/${s.maxTrials}` : s.completed, 'progress'),
      stat('running', s.running, 'running'), stat('queued', s.queued ?? 0, 'queued'), stat('pruned', s.pruned, 'pruned'), stat('failed', s.failed, 'failed'),
      stat('GPU-h used', hours(s.gpuHours), 'gpuHours'), stat('GPU-h saved by pruning', hours(s.gpuHoursSaved), 'gpuHoursSaved'),
      s.pruner ? stat('pruner', s.pruner, 'pruner') : null),
    s.message ? el('p', { class: 'muted' }, s.message) : '',
    el('div', { class: 'controls' }, el('label', {}, logBox, ' log y axis')),
    el('div', { class: 'grid' },
      el('div', { class: 'card' }, el('h2', {}, 'History'), el('div', { id: 'history' })),
      el('div', { class: 'card' }, el('h2', {}, 'Intermediate values'),
        el('div', { class: 'legend' }, Object.entries(COLORS).slice(0, 5).map(([k, v]) => el('span', { style: `color:${v}` }, '— ' + k))),
        el('canvas', { id: 'curves', class: 'plot' })),
      el('div', { class: 'card' }, el('h2', {}, 'Parallel coordinates'), el('canvas', { id: 'parcoords', class: 'plot' })),
      el('div', { class: 'card' }, el('h2', {}, 'Parameter importance'), el('div', { id: 'importance' }),
        el('p', { class: 'muted', id: 'importance-method' }, p.importanceMethod))),
    el('h2', {}, 'Trials'),
    el('div', { class: 'controls' },
      el('input', { type: 'search', id: 'filter', placeholder: 'filter: text, or state=Pruned value<0.1 lr>0.01', value: ui.filter, oninput: e => { ui.filter = e.target.value; ui.pageNo = 0; renderTable(); } }),
      el('button', { id: 'prev', onclick: () => { ui.pageNo--; renderTable(); } }, '‹'),
      el('span', { id: 'pageinfo' }),
      el('button', { id: 'next', onclick: () => { ui.pageNo++; renderTable(); } }, '›'),
      el('button', { id: 'csv', onclick: exportCsv }, 'CSV')),
    el('table', { id: 'trials' }, el('thead'), el('tbody')));
  renderImportance();
  renderTable();
  mark('table');
  drawStudyCharts(mark);
}

function drawStudyCharts(mark = () => {}) {
  destroyCharts();
  drawHistory(); mark('history');
  drawCurves(); mark('curves');
  drawParcoords(); mark('parcoords');
}

// Where a study page's time goes (ms per stage, in `window.lopper.timings`; the scale test
// prints them).
function timer() {
  ui.timings = {};
  let t = performance.now();
  return stage => { const now = performance.now(); ui.timings[stage] = Math.round(now - t); t = now; };
}

function drawHistory() {
  const p = ui.page, box = document.getElementById('history');
  box.replaceChildren();
  const done = p.trials.filter(t => t.state === 'Completed' && t.value != null).sort((a, b) => a.number - b.number);
  const xs = [], ys = [], best = [];
  let b = null;
  for (const t of done) {
    if (b == null || better(p.study.direction, t.value, b)) b = t.value;
    xs.push(t.number); ys.push(t.value); best.push(b);
  }
  const log = ui.logY && ys.every(v => v > 0);
  const opts = {
    width: box.clientWidth || 520, height: 300,
    scales: { x: { time: false }, y: { distr: log ? 3 : 1 } },
    axes: [{ label: 'trial' }, { label: p.study.objective }],
    series: [{ label: 'trial' },
      { label: p.study.objective, stroke: COLORS.Completed, paths: () => null, points: { show: true, size: 5, fill: COLORS.Completed } },
      { label: 'best so far', stroke: '#111', width: 1.5, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } }],
  };
  ui.charts.push(new uPlot(opts, [xs, ys, best], box));
}

// A canvas sized to its CSS box at the device's pixel ratio.
function canvas2d(id) {
  const cv = document.getElementById(id);
  const r = cv.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
  cv.width = Math.max(1, Math.round(r.width * dpr)); cv.height = Math.max(1, Math.round(r.height * dpr));
  const ctx = cv.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, r.width, r.height);
  return { cv, ctx, w: r.width, h: r.height };
}

function drawCurves() {
  const p = ui.page, { cv, ctx, w, h } = canvas2d('curves');
  const L = 56, R = 10, T = 10, B = 28;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  const log = ui.logY;
  for (const c of ui.curves.values()) {
    for (let i = 0; i < c.steps.length; i++) {
      const y = c.values[i];
      if (!Number.isFinite(y) || (log && y <= 0)) continue;
      const s = c.steps[i];
      if (s < x0) x0 = s; if (s > x1) x1 = s;
      const yy = log ? Math.log10(y) : y;
      if (yy < y0) y0 = yy; if (yy > y1) y1 = yy;
    }
  }
  if (!(x1 >= x0)) { ctx.fillStyle = '#66717d'; ctx.fillText('no reported values yet', L, T + 20); return; }
  if (x1 === x0) x1 = x0 + 1; if (y1 === y0) { y0 -= 1; y1 += 1; }
  const sx = s => L + (s - x0) / (x1 - x0) * (w - L - R);
  const sy = v => T + (1 - ((log ? Math.log10(v) : v) - y0) / (y1 - y0)) * (h - T - B);
  ui.curveScale = { sx, sy, log };
  axes(ctx, w, h, L, R, T, B, x0, x1, y0, y1, log, 'step');
  const bestN = p.study.bestTrial;
  // One path per state: a few strokes for any number of trials.
  for (const state of ['Failed', 'Pruned', 'Completed', 'Queued', 'Running', 'Pending']) {
    ctx.beginPath();
    for (const t of p.trials) {
      if (t.state !== state || t.number === bestN) continue;
      trace(ctx, ui.curves.get(t.number), sx, sy, log);
    }
    ctx.strokeStyle = COLORS[state]; ctx.globalAlpha = p.trials.length > 500 ? 0.25 : 0.7; ctx.lineWidth = 1;
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  if (bestN != null && ui.curves.get(bestN)) {
    ctx.beginPath(); trace(ctx, ui.curves.get(bestN), sx, sy, log);
    ctx.strokeStyle = '#111'; ctx.lineWidth = 2.5; ctx.stroke();
  }
  // The nearest point is searched among every point (a million at 10,000 trials): once a frame.
  cv.onmousemove = e => {
    ui.tipEvent = e;
    if (!ui.tipFrame) ui.tipFrame = requestAnimationFrame(() => { ui.tipFrame = 0; curveTip(ui.tipEvent, cv); });
  };
  cv.onmouseleave = () => { document.getElementById('tip').hidden = true; };
}

function trace(ctx, c, sx, sy, log) {
  if (!c) return;
  let pen = false;
  for (let i = 0; i < c.steps.length; i++) {
    const v = c.values[i];
    if (!Number.isFinite(v) || (log && v <= 0)) { pen = false; continue; }
    const x = sx(c.steps[i]), y = sy(v);
    if (pen) ctx.lineTo(x, y); else { ctx.moveTo(x, y); pen = true; }
  }
}

function axes(ctx, w, h, L, R, T, B, x0, x1, y0, y1, log, xlabel) {
  ctx.strokeStyle = '#dde2e7'; ctx.fillStyle = '#66717d'; ctx.font = '11px system-ui'; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, h - B); ctx.lineTo(w - R, h - B); ctx.stroke();
  for (let i = 0; i <= 4; i++) {
    const f = i / 4, yv = y0 + (y1 - y0) * (1 - f), y = T + f * (h - T - B);
    ctx.textAlign = 'right'; ctx.fillText(fmt(log ? 10 ** yv : yv), L - 4, y + 4);
    const xv = x0 + (x1 - x0) * f, x = L + f * (w - L - R);
    ctx.textAlign = 'center'; ctx.fillText(fmt(Math.round(xv)), x, h - B + 14);
  }
  ctx.fillText(xlabel, (L + w - R) / 2, h - 2);
}

// The nearest point under the mouse: which trial, its state and why it was pruned.
function curveTip(e, cv) {
  const tip = document.getElementById('tip'), s = ui.curveScale;
  if (!s) return;
  const r = cv.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
  let best = null, bd = 100;
  for (const [n, c] of ui.curves) {
    for (let i = 0; i < c.steps.length; i++) {
      const v = c.values[i];
      if (!Number.isFinite(v) || (s.log && v <= 0)) continue;
      const d = Math.abs(s.sx(c.steps[i]) - mx) + Math.abs(s.sy(v) - my);
      if (d < bd) { bd = d; best = [n, c.steps[i], v]; }
    }
  }
  if (!best) { tip.hidden = true; return; }
  const t = ui.byNumber.get(best[0]);
  tip.textContent = `trial ${best[0]} · ${t ? t.state : ''}${t && t.reason ? ' (' + t.reason + ')' : ''}\nstep ${best[1]} · ${fmt(best[2])}`;
  tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px'; tip.hidden = false;
}

function drawParcoords() {
  const p = ui.page, { ctx, w, h } = canvas2d('parcoords');
  const done = p.trials.filter(t => t.state === 'Completed' && Number.isFinite(t.value));
  const dims = [...p.params, p.study.objective || 'value'];
  if (!done.length) { ctx.fillStyle = '#66717d'; ctx.fillText('no completed trials yet', 20, 30); return; }
  const T = 36, B = 20, L = 30, R = 30;
  // Each axis maps its values to [0, 1]: numbers by range (log when positive and spanning
  // more than two decades), anything else by category.
  const scales = dims.map((d, i) => {
    const vals = done.map(t => i === dims.length - 1 ? t.value : t.params[d]).filter(v => v != null);
    if (vals.length && vals.every(v => typeof v === 'number')) {
      let lo = Math.min(...vals), hi = Math.max(...vals);
      const lg = lo > 0 && hi / lo > 100;
      if (lg) { lo = Math.log10(lo); hi = Math.log10(hi); }
      const span = hi - lo || 1;
      return { f: v => typeof v === 'number' ? ((lg ? Math.log10(v) : v) - lo) / span : null, lo: lg ? 10 ** lo : lo, hi: lg ? 10 ** hi : hi };
    }
    const cats = [...new Set(vals.map(String))].sort();
    return { f: v => v == null ? null : (cats.indexOf(String(v)) + 0.5) / cats.length, lo: cats[0], hi: cats[cats.length - 1] };
  });
  const ax = i => L + i * (w - L - R) / Math.max(1, dims.length - 1);
  const ay = f => T + (1 - f) * (h - T - B);
  const vs = scales[dims.length - 1];
  // Colour by the objective: the best end dark.
  const shade = v => { let f = vs.f(v); if (p.study.direction === 'maximize') f = 1 - f; const l = 25 + 55 * f; return `hsl(220,70%,${l}%)`; };
  ctx.globalAlpha = done.length > 1000 ? 0.15 : 0.6; ctx.lineWidth = 1;
  const sorted = [...done].sort((a, b) => better(p.study.direction, a.value, b.value) ? 1 : -1);
  for (const t of sorted) {
    ctx.beginPath(); let pen = false;
    dims.forEach((d, i) => {
      const f = scales[i].f(i === dims.length - 1 ? t.value : t.params[d]);
      if (f == null) { pen = false; return; }
      if (pen) ctx.lineTo(ax(i), ay(f)); else { ctx.moveTo(ax(i), ay(f)); pen = true; }
    });
    ctx.strokeStyle = shade(t.value); ctx.stroke();
  }
  ctx.globalAlpha = 1; ctx.fillStyle = '#1d232a'; ctx.font = '11px system-ui'; ctx.textAlign = 'center';
  dims.forEach((d, i) => {
    ctx.strokeStyle = '#888'; ctx.beginPath(); ctx.moveTo(ax(i), T); ctx.lineTo(ax(i), h - B); ctx.stroke();
    ctx.fillText(d, ax(i), 12);
    ctx.fillStyle = '#66717d'; ctx.fillText(fmt(scales[i].hi), ax(i), T - 6); ctx.fillText(fmt(scales[i].lo), ax(i), h - 6); ctx.fillStyle = '#1d232a';
  });
}

function renderImportance() {
  const box = document.getElementById('importance');
  const imp = ui.page.importance;
  box.replaceChildren(...imp.map(i => el('div', { class: 'imp', 'data-param': i.param },
    el('span', {}, i.param), el('div', {}, el('div', { class: 'bar', style: `width:${(i.importance * 100).toFixed(1)}%` })),
    el('span', { class: 'num', 'data-field': 'importance' }, (i.importance * 100).toFixed(1) + '%'))));
  if (!imp.length) box.append(el('p', { class: 'muted' }, 'no parameters'));
}

// ---------- trials table ----------
function columns() {
  const p = ui.page;
  return [['number', '#'], ['state', 'state'], ['value', p.study.objective || 'value'], ['step', 'step'], ['reason', 'reason'], ['seconds', 'seconds'],
    ...p.params.map(n => ['param:' + n, n])];
}
function cell(t, key) {
  if (key.startsWith('param:')) return t.params[key.slice(6)];
  return t[key];
}
// Terms: `key<v`, `key>v`, `key=v` (key: a column or a parameter), or text anywhere in the row.
function matcher(text) {
  const terms = text.trim().split(/\s+/).filter(Boolean).map(term => {
    const m = term.match(/^([\w.-]+)(<=|>=|=|<|>)(.+)$/);
    if (!m) { const q = term.toLowerCase(); return t => [t.state, t.name, t.reason, t.number, ...Object.values(t.params)].some(v => v != null && String(v).toLowerCase().includes(q)); }
    const [, k, op, raw] = m, num = Number(raw);
    const get = t => (k in t.params ? t.params[k] : t[k]);
    return t => {
      const v = get(t);
      if (v == null) return false;
      if (op === '=') return String(v).toLowerCase() === raw.toLowerCase() || (typeof v === 'number' && v === num);
      if (typeof v !== 'number' || Number.isNaN(num)) return false;
      return op === '<' ? v < num : op === '>' ? v > num : op === '<=' ? v <= num : v >= num;
    };
  });
  return t => terms.every(f => f(t));
}
function visibleTrials() {
  const { key, dir } = ui.sort;
  const rows = ui.page.trials.filter(matcher(ui.filter));
  rows.sort((a, b) => {
    const x = cell(a, key), y = cell(b, key);
    if (x == null && y == null) return 0;
    if (x == null) return 1; if (y == null) return -1;
    return (typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y))) * dir;
  });
  return rows;
}
function renderTable() {
  const table = document.getElementById('trials');
  if (!table) return;
  const p = ui.page, rows = visibleTrials(), cols = columns();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE));
  ui.pageNo = Math.min(Math.max(0, ui.pageNo), pages - 1);
  const from = ui.pageNo * PAGE, shown = rows.slice(from, from + PAGE);
  table.tHead.replaceChildren(el('tr', {}, cols.map(([k, label]) => el('th', {
    'data-key': k, class: ui.sort.key === k ? (ui.sort.dir > 0 ? 'asc' : 'desc') : null,
    onclick: () => { ui.sort = { key: k, dir: ui.sort.key === k ? -ui.sort.dir : 1 }; renderTable(); },
  }, label))));
  const s = p.study;
  table.tBodies[0].replaceChildren(...shown.map(t => el('tr', { 'data-trial': t.number },
    el('td', { 'data-field': 'number', class: 'num' }, el('a', { href: `#/trial/${encodeURIComponent(s.namespace)}/${encodeURIComponent(s.name)}/${t.number}` }, t.number)),
    el('td', { 'data-field': 'state', class: 'state-' + t.state }, t.state),
    el('td', { 'data-field': 'value', class: 'num' }, fmt(t.value)),
    el('td', { 'data-field': 'step', class: 'num' }, fmt(t.step)),
    el('td', { 'data-field': 'reason', title: t.message || '' }, t.reason || ''),
    el('td', { 'data-field': 'seconds', class: 'num' }, t.seconds == null ? '—' : t.seconds.toFixed(1)),
    p.params.map(n => el('td', { 'data-param': n, class: typeof t.params[n] === 'number' ? 'num' : null }, fmt(t.params[n]))))));
  document.getElementById('pageinfo').textContent = rows.length ? `${from + 1}–${from + shown.length} of ${rows.length}` : '0 of 0';
  document.getElementById('prev').disabled = ui.pageNo === 0;
  document.getElementById('next').disabled = ui.pageNo >= pages - 1;
}
function csvField(v) {
  const s = v == null ? '' : String(v);
  return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}
function exportCsv() {
  const cols = columns();
  const lines = [cols.map(c => csvField(c[1])).join(',')];
  for (const t of visibleTrials()) lines.push(cols.map(([k]) => csvField(cell(t, k))).join(','));
  const csv = lines.join('\n') + '\n';
  ui.lastCsv = csv;
  const a = el('a', { href: URL.createObjectURL(new Blob([csv], { type: 'text/csv' })), download: `${ui.page.study.name}-trials.csv` });
  document.body.append(a); a.click(); a.remove();
}

// ---------- a trial ----------
async function showTrial(ns, study, number) {
  const p = await api(`studies/${encodeURIComponent(ns)}/${encodeURIComponent(study)}/trials/${number}`);
  ui.trial = p;
  const t = p.trial, s = p.study;
  crumbs(el('span', {}, ns), el('a', { href: `#/study/${encodeURIComponent(ns)}/${encodeURIComponent(study)}` }, study), el('span', {}, t.name));
  const kv = (rows, id) => el('table', { id }, el('tbody', {}, rows));
  main.replaceChildren(
    el('h1', {}, t.name, ' ', el('span', { class: 'state-' + t.state, 'data-field': 'state' }, t.state)),
    el('div', { class: 'stats', id: 'summary' },
      stat(s.objective || 'value', fmt(t.value), 'value'), stat('last step', fmt(t.step), 'step'),
      stat('seconds', t.seconds == null ? '—' : t.seconds.toFixed(1), 'seconds'),
      t.reason ? stat('reason', t.reason, 'reason') : null),
    el('div', { class: 'grid' },
      el('div', { class: 'card' }, el('h2', {}, 'Parameters'),
        kv(Object.entries(t.params).map(([k, v]) => el('tr', { 'data-param': k }, el('th', {}, k), el('td', { class: 'value' }, fmt(v)))), 'params')),
      el('div', { class: 'card' }, el('h2', {}, 'Curve ', el('span', { class: 'muted', id: 'points' }, `${p.curve.length} points`)), el('div', { id: 'trialcurve' }))),
    el('h2', {}, 'Conditions'),
    el('table', { id: 'conditions' }, el('thead', {}, el('tr', {}, ['type', 'status', 'reason', 'message'].map(h => el('th', {}, h)))),
      el('tbody', {}, p.conditions.map(c => el('tr', { 'data-type': c.type }, el('td', {}, c.type), el('td', {}, c.status), el('td', { 'data-field': 'reason' }, c.reason), el('td', {}, c.message))))),
    el('h2', {}, 'Job'),
    p.job ? el('table', { id: 'job' }, el('tbody', {},
      el('tr', {}, el('th', {}, 'name'), el('td', { 'data-field': 'name' }, p.job.name)),
      el('tr', {}, el('th', {}, 'active / succeeded / failed'), el('td', { 'data-field': 'pods' }, `${p.job.active} / ${p.job.succeeded} / ${p.job.failed}`)),
      p.job.conditions.map(c => el('tr', {}, el('th', {}, c.type), el('td', {}, `${c.status} ${c.reason} ${c.message}`)))))
      : el('p', { class: 'muted', id: 'job' }, 'no Job (deleted when pruned, or a local run)'),
    el('h2', {}, 'Events'),
    p.events.length ? el('table', { id: 'events' }, el('tbody', {}, p.events.map(e => el('tr', {}, el('td', {}, e.type), el('td', {}, e.reason), el('td', {}, e.message), el('td', { class: 'num' }, '×' + e.count), el('td', { class: 'muted' }, e.last || '')))))
      : el('p', { class: 'muted', id: 'events' }, 'no Events'));
  drawTrialCurve();
}
function drawTrialCurve() {
  const p = ui.trial, box = document.getElementById('trialcurve');
  destroyCharts(); box.replaceChildren();
  const xs = p.curve.map(c => c[0]), ys = p.curve.map(c => c[1]);
  const log = ui.logY && ys.every(v => v == null || v > 0);
  ui.charts.push(new uPlot({
    width: box.clientWidth || 520, height: 300,
    scales: { x: { time: false }, y: { distr: log ? 3 : 1 } },
    axes: [{ label: 'step' }, { label: p.study.objective }],
    series: [{ label: 'step' }, { label: p.study.objective, stroke: COLORS[p.trial.state] || '#111', width: 2, points: { show: xs.length < 200 } }],
  }, [xs, ys], box));
  document.getElementById('points').textContent = `${p.curve.length} points`;
}

// ---------- live updates ----------
// Points of an update replace the known points from the update's first step on.
function merge(curve, points) {
  if (!points.length) return curve;
  const first = points[0][0];
  return curve.filter(c => c[0] < first).concat(points.map(([s, v]) => [s, v == null ? NaN : v]));
}
let redraw = null;
function soon(f) { if (!redraw) redraw = setTimeout(() => { redraw = null; f(); }, 250); }
function onTrial(u) {
  if (ui.trial && ui.trial.study.namespace === u.namespace && ui.trial.study.name === u.study && ui.trial.trial.number === u.trial.number) {
    ui.trial.trial = u.trial;
    ui.trial.curve = merge(ui.trial.curve, u.points);
    for (const [f, v] of [['state', u.trial.state], ['value', fmt(u.trial.value)], ['step', fmt(u.trial.step)]]) {
      const e = main.querySelector(`[data-field="${f}"]`); if (e) e.textContent = v;
    }
    ui.charts[0] && ui.charts[0].setData([ui.trial.curve.map(c => c[0]), ui.trial.curve.map(c => c[1])]);
    document.getElementById('points').textContent = `${ui.trial.curve.length} points`;
    return;
  }
  const p = ui.page;
  if (!p || p.study.namespace !== u.namespace || p.study.name !== u.study) return;
  const old = ui.byNumber.get(u.trial.number);
  // The history and parallel coordinates show completed trials only.
  if (u.trial.state === 'Completed' && (!old || old.state !== 'Completed')) dirty.finished = true;
  if (old) Object.assign(old, u.trial); else { p.trials.push(u.trial); ui.byNumber.set(u.trial.number, u.trial); }
  const c = ui.curves.get(u.trial.number);
  const known = c ? Array.from(c.steps, (s, i) => [s, c.values[i]]) : [];
  const m = merge(known, u.points);
  ui.curves.set(u.trial.number, { steps: m.map(x => x[0]), values: m.map(x => x[1]) });
  redrawSoon(p);
}
// Live redraws of a study page draw only what changed (the table and the curves on a report;
// the history and parallel coordinates when a trial completes), at most four times a second
// and at most a quarter of the time: a 10,000-trial page takes ~100 ms to draw, and must stay
// responsive while reports stream in.
const dirty = { finished: false };
let pending = null, drawCost = 0;
function redrawSoon(p) {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    if (ui.page !== p) return;
    const t = performance.now();
    renderTable();
    if (dirty.finished) drawStudyCharts(); else drawCurves();
    dirty.finished = false;
    drawCost = performance.now() - t;
    ui.redraws = (ui.redraws || 0) + 1;
  }, Math.max(250, 3 * drawCost));
}
function onStudy(u) {
  const s = u.study;
  if (ui.page && ui.page.study.namespace === s.namespace && ui.page.study.name === s.name) {
    Object.assign(ui.page.study, s);
    for (const [f, v] of [['best', fmt(s.best)], ['bestTrial', s.bestTrial ?? '—'], ['progress', s.maxTrials ? `${s.completed}/${s.maxTrials}` : s.completed],
      ['running', s.running], ['queued', s.queued ?? 0], ['pruned', s.pruned], ['failed', s.failed], ['phase', s.phase], ['gpuHours', hours(s.gpuHours)], ['gpuHoursSaved', hours(s.gpuHoursSaved)]]) {
      const e = main.querySelector(`#summary [data-field="${f}"], h1 [data-field="${f}"]`); if (e) e.textContent = v;
    }
  } else if (!ui.page && !ui.trial) soon(() => { if (!ui.page && !ui.trial) route(); });
}
function connect() {
  const es = new EventSource('api/events');
  const live = document.getElementById('live');
  es.onopen = () => { live.className = 'on'; live.textContent = 'live'; };
  es.onerror = () => { live.className = ''; live.textContent = 'reconnecting…'; };
  es.addEventListener('trial', e => onTrial(JSON.parse(e.data)));
  es.addEventListener('study', e => onStudy(JSON.parse(e.data)));
  es.addEventListener('resync', () => route());
}

connect();
route();
