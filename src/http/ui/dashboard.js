// distsched dashboard. One file, no build step, no dependency: it reads the
// node's JSON API with relative URLs (so it works under any path prefix),
// routes with #/… fragments, and builds every element with the DOM API
// (text through textContent, never innerHTML), so the page runs under a
// strict Content-Security-Policy without inline scripts or styles.
'use strict';

(function () {
  const TOKEN_KEY = 'distsched.token';
  const THEME_KEY = 'distsched.theme';
  const REFRESH_KEY = 'distsched.refresh';
  const MIN_REFRESH_S = 2;

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    access: null, // 'full' | 'read' | 'none'
    timer: null,
    page: null, // {refresh: async fn, stop: fn}
    seq: 0,
  };

  // ------------------------------------------------------------ helpers

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function fmtTime(ms) {
    if (!ms) return '—';
    const d = new Date(ms);
    const today = new Date();
    const time = d.toLocaleTimeString([], { hour12: false });
    return d.toDateString() === today.toDateString() ? time : d.toLocaleDateString() + ' ' + time;
  }

  function fmtDur(ms) {
    if (ms === null || ms === undefined || ms < 0 || Number.isNaN(ms)) return '—';
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + Math.round(s % 60) + ' s';
    const h = Math.floor(m / 60);
    if (h < 48) return h + ' h ' + (m % 60) + ' min';
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  function ago(ms) {
    return ms ? fmtDur(Date.now() - ms) + ' ago' : '—';
  }

  function badge(status) {
    return el('span', { class: 'badge s-' + status, 'data-status': status, text: status });
  }

  function meter(value, max, big) {
    const fill = el('span');
    const pct = max > 0 ? Math.max(0, Math.min(100, (100 * value) / max)) : 0;
    fill.style.width = pct + '%';
    return el('div', { class: 'meter' + (big ? ' big' : ''), role: 'progressbar', 'aria-valuenow': Math.round(pct), 'aria-valuemin': 0, 'aria-valuemax': 100 }, fill);
  }

  function table(headers, rows, attrs) {
    return el('div', { class: 'scroll' },
      el('table', attrs || null,
        el('thead', null, el('tr', null, headers.map((h) => {
          const [text, cls] = Array.isArray(h) ? h : [h, null];
          return el('th', { class: cls, text });
        }))),
        el('tbody', null, rows)));
  }

  function toast(message, ok) {
    const t = document.getElementById('toast');
    t.textContent = message;
    t.className = ok ? 'ok' : '';
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, ok ? 2500 : 6000);
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
    const s = q.toString();
    return s ? '?' + s : '';
  }

  function jsonTree(value) {
    if (value === null) return el('span', { class: 'null', text: 'null' });
    if (typeof value === 'string') return el('span', { class: 'str', text: JSON.stringify(value) });
    if (typeof value === 'number') return el('span', { class: 'num', text: String(value) });
    if (typeof value === 'boolean') return el('span', { class: 'bool', text: String(value) });
    const isArray = Array.isArray(value);
    const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
    if (entries.length === 0) return el('span', { text: isArray ? '[]' : '{}' });
    const summary = isArray ? '[' + entries.length + ' items]' : '{' + entries.length + ' keys}';
    return el('details', { open: entries.length <= 20 },
      el('summary', { text: summary }),
      el('ul', null, entries.map(([k, v]) => el('li', null,
        isArray ? null : el('span', { class: 'k', text: JSON.stringify(String(k)) + ': ' }),
        jsonTree(v)))));
  }

  // ------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    let resp;
    try {
      resp = await fetch(path, {
        method: opts.method || 'GET',
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new ApiError(0, 'cannot reach the node (' + e.message + ')');
    }
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      if (resp.status === 401) showLogin('The token was refused.');
      throw new ApiError(resp.status, (body && body.error) || resp.status + ' ' + resp.statusText);
    }
    return body;
  }

  // The actions a full token may take; nothing is drawn for a read token.
  function canWrite() { return state.access === 'full'; }

  function actionButton(text, onclick, cls) {
    return el('button', { type: 'button', class: 'action' + (cls ? ' ' + cls : ''), 'data-action': text.toLowerCase().replace(/\s+/g, '-'), onclick, text });
  }

  async function act(label, path, options, after) {
    try {
      const r = await api(path, Object.assign({ method: 'POST' }, options || {}));
      toast(label + ': done', true);
      if (after) after(r); else refreshNow();
    } catch (e) {
      toast(label + ': ' + e.message);
    }
  }

  // ------------------------------------------------------------ auth

  async function checkAccess() {
    const r = await api('access');
    state.access = r.access;
    const role = document.getElementById('role');
    role.hidden = !r.token;
    role.textContent = r.access === 'full' ? 'full access' : r.access === 'read' ? 'read only' : 'signed out';
    document.getElementById('logout').hidden = !r.token || !state.token;
    return r;
  }

  function showLogin(message) {
    stopTimer();
    const box = document.getElementById('login');
    box.hidden = false;
    const err = document.getElementById('login-error');
    err.hidden = !message;
    err.textContent = message || '';
    document.getElementById('token').focus();
  }

  async function signIn(ev) {
    ev.preventDefault();
    state.token = document.getElementById('token').value.trim();
    const r = await checkAccess().catch(() => null);
    if (!r || r.access === 'none') {
      showLogin('That token is not accepted by this node.');
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, state.token);
    document.getElementById('token').value = '';
    document.getElementById('login').hidden = true;
    route();
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = '';
    state.access = null;
    start();
  }

  // ------------------------------------------------------------ refresh

  function interval() {
    const v = Number(document.getElementById('refresh').value);
    return v > 0 ? Math.max(v, MIN_REFRESH_S) : 0;
  }

  function stopTimer() {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
  }

  function schedule() {
    stopTimer();
    const s = interval();
    if (s > 0 && state.page && state.page.refresh) {
      state.timer = setTimeout(refreshNow, s * 1000);
    }
  }

  async function refreshNow() {
    stopTimer();
    const page = state.page;
    if (!page || !page.refresh) return;
    try {
      await page.refresh();
    } catch (e) {
      if (e.status !== 401) toast(e.message);
    }
    if (state.page === page) schedule();
  }

  // ------------------------------------------------------------ router

  function parseHash() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const [path, q] = raw.split('?');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    return { parts, params: new URLSearchParams(q || '') };
  }

  async function route() {
    stopTimer();
    const { parts, params } = parseHash();
    const seq = ++state.seq;
    const main = document.getElementById('main');
    const name = parts[0] || 'overview';
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('active', a.dataset.page === name);
    }
    const pages = {
      overview: () => overviewPage(),
      tasks: () => (parts[1] ? taskPage(parts[1]) : tasksPage(params)),
      jobs: () => (parts[1] ? jobPage(parts[1]) : jobsPage(params)),
      workers: () => workersPage(),
      failures: () => failuresPage(),
    };
    const make = pages[name];
    const root = el('div', { id: 'page', 'data-page': name });
    main.replaceChildren(root);
    if (!make) {
      root.append(el('h1', { text: 'Not found' }), el('p', null, 'No page ', el('code', { text: location.hash })));
      state.page = null;
      return;
    }
    const page = make();
    state.page = page;
    try {
      await page.init(root);
      if (seq !== state.seq) return;
      root.dataset.ready = '1';
      schedule();
    } catch (e) {
      if (seq !== state.seq || e.status === 401) return;
      root.append(el('p', { class: 'error', 'data-error': '1', text: e.message }));
      schedule();
    }
  }

  // Re-renders `node`'s content from `build()`, keeping the element.
  function fill(node, ...children) {
    node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  }

  // ------------------------------------------------------------ overview

  function overviewPage() {
    let cards, workers, chartBox, history = [];
    async function loadHistory(minutes) {
      const rows = await api('history' + query({ minutes }));
      if (minutes >= 1440 || history.length === 0) { history = rows; return; }
      const by = new Map(history.map((m) => [m.minute_ms, m]));
      for (const m of rows) by.set(m.minute_ms, m);
      const last = rows[rows.length - 1].minute_ms;
      history = [...by.values()].filter((m) => m.minute_ms > last - 1440 * 60000).sort((a, b) => a.minute_ms - b.minute_ms);
    }
    async function refresh(first) {
      const [stats] = await Promise.all([api('stats'), loadHistory(first ? 1440 : 3)]);
      const hourAgo = stats.time_ms - 3600000;
      const failedHour = history.filter((m) => m.minute_ms >= hourAgo - 60000).reduce((a, m) => a + m.failed, 0);
      const l = stats.leader;
      fill(cards,
        el('div', { class: 'card', 'data-test': 'leader' },
          el('div', { class: 'label', text: 'Leader' }),
          el('div', { class: 'value', 'data-value': l ? l.node : '', text: l ? l.node : 'none' }),
          el('div', { class: 'sub', text: l ? 'epoch ' + l.epoch + ' · lease ' + fmtDur(l.ttl_ms) + ' left' : 'the lease is free' }),
          el('div', { class: 'sub', text: l && l.last_tick_age_ms !== null ? 'last leader write ' + fmtDur(l.last_tick_age_ms) + ' ago' : '' })),
        el('div', { class: 'card', 'data-test': 'workers' },
          el('div', { class: 'label', text: 'Workers online' }),
          el('div', { class: 'value', 'data-value': stats.workers_online, text: String(stats.workers_online) }),
          el('div', { class: 'sub', text: stats.nodes.length + ' live nodes · capacity ' + stats.nodes.reduce((a, n) => a + n.capacity, 0) })),
        el('div', { class: 'card', 'data-test': 'tasks' },
          el('div', { class: 'label', text: 'Tasks' }),
          el('div', { class: 'value', text: String(stats.tasks.pending + stats.tasks.delayed + stats.tasks.queued + stats.tasks.running) }),
          el('div', { class: 'sub', text: 'pending ' + stats.tasks.pending + ' · delayed ' + stats.tasks.delayed + ' · queued ' + stats.tasks.queued + ' · running ' + stats.tasks.running })),
        el('div', { class: 'card', 'data-test': 'failures' },
          el('div', { class: 'label', text: 'Failed, last hour' }),
          el('div', { class: 'value', text: String(failedHour) }),
          el('div', { class: 'sub' }, el('a', { href: '#/failures', text: 'by error →' }))),
        el('div', { class: 'card', 'data-test': 'rates' },
          el('div', { class: 'label', text: 'Last minute' }),
          el('div', { class: 'value', text: Math.round(stats.rates.ended_per_minute) + ' ended' }),
          el('div', { class: 'sub', text: Math.round(stats.rates.last_minute.succeeded) + ' ok · ' + Math.round(stats.rates.last_minute.failed) + ' failed · ' + Math.round(stats.rates.last_minute.retried) + ' retried' })));
      fill(workers, stats.nodes.length === 0 ? el('p', { class: 'muted', text: 'No live node.' }) :
        table(['Node', 'Role', 'Load (queued + running / capacity)'], stats.nodes.map((n) => el('tr', { 'data-node': n.id },
          el('td', null, n.leader ? el('span', { class: 'star', title: 'leader', text: '★ ' }) : null, n.id),
          el('td', { text: n.role }),
          el('td', null, n.capacity > 0 ? el('div', { class: 'load' }, meter(n.queued + n.running, n.capacity), el('span', { class: 'mono', text: (n.queued + n.running) + ' / ' + n.capacity })) : el('span', { class: 'muted', text: 'scheduler only' }))))));
      fill(chartBox, chart(history));
    }
    return {
      async init(root) {
        root.append(el('h1', { text: 'Overview' }));
        cards = el('div', { class: 'grid' });
        workers = el('div');
        chartBox = el('div', { class: 'chart' });
        root.append(cards,
          el('div', { class: 'panel' }, el('h2', { text: 'Tasks per minute, last 24 h' }),
            el('div', { class: 'legend' }, ['succeeded', 'failed', 'retried'].map((k) => el('span', null, el('i', { class: k }), k))), chartBox),
          el('div', { class: 'panel' }, el('h2', { text: 'Workers' }), workers));
        await refresh(true);
      },
      refresh: () => refresh(false),
    };
  }

  // Per-minute counts as an SVG line chart: one polyline per outcome.
  function chart(minutes) {
    const W = 1440, H = 200, PAD = 22;
    const box = svg('svg', { viewBox: '0 0 ' + (W + 40) + ' ' + (H + PAD), preserveAspectRatio: 'none', role: 'img', 'aria-label': 'tasks per minute' });
    if (minutes.length === 0) return box;
    const end = minutes[minutes.length - 1].minute_ms;
    const startMs = end - (W - 1) * 60000;
    const max = Math.max(1, ...minutes.map((m) => Math.max(m.succeeded, m.failed, m.retried)));
    const x = (ms) => 40 + (ms - startMs) / 60000;
    const y = (v) => H - (v / max) * (H - 10);
    box.append(svg('line', { class: 'axis', x1: 40, y1: H, x2: W + 40, y2: H }));
    box.append(svg('line', { class: 'axis', x1: 40, y1: 10, x2: 40, y2: H }));
    const label = svg('text', { class: 'tick', x: 2, y: 18 });
    label.textContent = String(max);
    box.append(label);
    for (let hrs = 24; hrs >= 0; hrs -= 6) {
      const t = end - hrs * 3600000;
      const tx = x(t);
      if (tx < 40) continue;
      const text = svg('text', { class: 'tick', x: Math.min(tx, W), y: H + 16 });
      text.textContent = hrs === 0 ? 'now' : '-' + hrs + ' h';
      box.append(text);
    }
    for (const key of ['succeeded', 'retried', 'failed']) {
      const pts = minutes.filter((m) => m.minute_ms >= startMs).map((m) => x(m.minute_ms).toFixed(1) + ',' + y(m[key]).toFixed(1));
      box.append(svg('polyline', { class: key, points: pts.join(' '), 'data-series': key }));
    }
    return box;
  }

  // ------------------------------------------------------------ tasks

  const STATUSES = ['', 'pending', 'running', 'retrying', 'success', 'failed', 'cancelled'];
  const FILTERS = ['status', 'job', 'executor', 'worker', 'id', 'payload', 'error', 'error_group', 'cursor'];

  function tasksPage(params) {
    let body;
    const q = {};
    for (const k of FILTERS) if (params.get(k)) q[k] = params.get(k);
    function go(next) { location.hash = '#/tasks' + query(next); }
    function form() {
      const input = (name, label, cls) => el('label', null, label, el('input', { name, value: q[name] || '', class: cls, 'data-filter': name }));
      const mode = q.payload ? 'payload' : q.error ? 'error' : 'id';
      const f = el('form', { class: 'filters', id: 'task-filters' },
        el('label', null, 'Status', el('select', { name: 'status', 'data-filter': 'status' }, STATUSES.map((s) => el('option', { value: s, selected: (q.status || '') === s, text: s || 'any' })))),
        input('job', 'Job'), input('executor', 'Executor'), input('worker', 'Worker'),
        el('label', null, 'Search', el('select', { name: 'mode', 'data-filter': 'mode' },
          [['id', 'id starts with'], ['payload', 'payload contains'], ['error', 'error contains']].map(([v, t]) => el('option', { value: v, selected: mode === v, text: t })))),
        el('label', null, 'for', el('input', { name: 'q', class: 'wide', value: q[mode] || '', 'data-filter': 'q' })),
        el('button', { type: 'submit', class: 'primary', id: 'apply', text: 'Apply' }),
        el('a', { href: '#/tasks', text: 'clear' }));
      f.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const d = new FormData(f);
        const next = {};
        for (const k of ['status', 'job', 'executor', 'worker']) if (d.get(k)) next[k] = String(d.get(k)).trim();
        const text = String(d.get('q') || '').trim();
        if (text) next[String(d.get('mode'))] = text;
        if (q.error_group) next.error_group = q.error_group;
        go(next);
      });
      return f;
    }
    async function refresh() {
      const page = await api('search' + query(Object.assign({ limit: 50 }, q)));
      const rows = page.tasks.map((t) => el('tr', { 'data-task': t.id },
        el('td', { class: 'mono' }, el('a', { href: '#/tasks/' + encodeURIComponent(t.id), text: t.id })),
        el('td', null, badge(t.status), t.progress !== null && t.status === 'running' ? el('span', { class: 'muted', text: ' ' + t.progress + '%' }) : null),
        el('td', { text: t.executor }),
        el('td', null, t.job ? el('a', { href: '#/jobs/' + encodeURIComponent(t.job), text: t.job }) : '—'),
        el('td', { class: 'hide-narrow', text: t.worker || '—' }),
        el('td', { text: fmtTime(t.created_ms) }),
        el('td', { class: 'num', text: t.started_ms ? fmtDur((t.ended_ms || Date.now()) - t.started_ms) : '—' }),
        el('td', { class: 'num hide-narrow', text: String(t.attempt) }),
        el('td', { class: 'wrap error', text: t.status === 'success' ? '' : (t.error || '') })));
      const looked = 'Looked at ' + page.scanned.toLocaleString() + ' task' + (page.scanned === 1 ? '' : 's') +
        (page.oldest_ms ? ', back to ' + fmtTime(page.oldest_ms) : '') +
        (page.complete ? ' (all there are)' : ' (the newest ' + page.window.toLocaleString() + ' at most per page)');
      fill(body,
        page.tasks.length === 0 ? el('p', { class: 'muted', id: 'no-tasks', text: 'No matching task.' }) :
          table(['Id', 'Status', 'Executor', 'Job', ['Worker', 'hide-narrow'], 'Created', ['Ran', 'num'], ['Try', 'num hide-narrow'], 'Error'], rows, { id: 'tasks' }),
        el('div', { class: 'pager' },
          el('span', { id: 'scanned', 'data-scanned': page.scanned, text: looked }),
          q.cursor ? el('a', { href: '#/tasks' + query(Object.assign({}, q, { cursor: '' })), text: '↑ newest' }) : null,
          page.cursor ? el('a', { id: 'older', href: '#/tasks' + query(Object.assign({}, q, { cursor: page.cursor })), text: 'older →' }) : null));
    }
    return {
      async init(root) {
        root.append(el('h1', { text: 'Tasks' }), form());
        if (q.error_group) root.append(el('p', { class: 'muted' }, 'Failed with an error like ', el('code', { text: q.error_group })));
        body = el('div', { class: 'panel' });
        root.append(body);
        await refresh();
      },
      refresh,
    };
  }

  // ------------------------------------------------------------ task detail

  function taskPage(id) {
    let head, progressBox, actions, facts, attempts, data, log, logMeta;
    let next = 0, status = null;
    const path = 'tasks/' + encodeURIComponent(id);
    async function loadLog() {
      for (let round = 0; round < 5; round++) {
        const chunk = await api(path + '/logs' + query({ after: next, limit: 1000 }));
        if (chunk.first > next && next > 0) log.append(document.createTextNode('(' + (chunk.first - next) + ' lines dropped by the log cap)\n'));
        if (chunk.lines.length) log.append(document.createTextNode(chunk.lines.join('\n') + '\n'));
        next = chunk.next;
        logMeta.textContent = chunk.total + ' lines' + (chunk.dropped ? ', the oldest ' + chunk.dropped + ' dropped by the cap' : '');
        log.dataset.lines = String(chunk.total);
        if (chunk.next >= chunk.total) break;
      }
      if (status === 'running') log.scrollTop = log.scrollHeight;
    }
    function render(t) {
      status = t.status;
      fill(head, el('span', { class: 'mono', id: 'task-id', text: t.id }),
        el('button', { type: 'button', id: 'copy-id', title: 'copy the id', text: 'copy id', onclick: () => copy(t.id) }),
        badge(t.status));
      const p = t.progress;
      fill(progressBox, p && !['success', 'failed', 'cancelled'].includes(t.status) ? [
        el('div', { class: 'load' }, meter(p.percent, 100, true), el('span', { class: 'mono', id: 'progress-value', 'data-percent': p.percent, text: p.percent + '%' })),
        el('div', { class: 'text', id: 'progress-text', text: p.text || '' })] : []);
      const terminal = ['success', 'failed', 'cancelled'].includes(t.status);
      fill(actions, canWrite() ? [
        terminal ? null : actionButton('Cancel', () => act('Cancel', path + '/cancel'), 'danger'),
        actionButton('Run again', () => act('Run again', path + '/rerun', {}, (r) => { location.hash = '#/tasks/' + encodeURIComponent(r.id); })),
      ] : []);
      const dur = t.started_ms ? fmtDur((t.ended_ms || Date.now()) - t.started_ms) : '—';
      const kv = [
        ['executor', t.executor],
        ['job', t.job ? el('a', { href: '#/jobs/' + encodeURIComponent(t.job), text: t.job }) : '—'],
        ['worker', t.worker || '—'],
        ['attempt', t.attempt + ' (retries allowed ' + t.max_retries + ', failures ' + t.failures + ')'],
        ['priority', String(t.priority)],
        ['created', fmtTime(t.created_ms)],
        ['ready', fmtTime(t.ready_ms)],
        ['started', fmtTime(t.started_ms)],
        ['ended', fmtTime(t.ended_ms)],
        ['ran', dur],
        ['timeout', fmtDur(t.timeout_ms)],
        t.next_attempt_ms ? ['next attempt', fmtTime(t.next_attempt_ms)] : null,
        t.key ? ['key', t.key] : null,
        t.tags && t.tags.length ? ['tags', t.tags.join(', ')] : null,
        t.rerun_of ? ['rerun of', el('a', { href: '#/tasks/' + encodeURIComponent(t.rerun_of), text: t.rerun_of })] : null,
        t.wait_reason ? ['waiting', t.wait_reason] : null,
        t.error ? ['error', el('span', { class: 'error', text: t.error })] : null,
      ].filter(Boolean);
      fill(facts, el('dl', { class: 'kv' }, kv.map(([k, v]) => [el('dt', { text: k }), el('dd', null, v)])));
      fill(attempts, t.attempts.length === 0 ? el('p', { class: 'muted', text: 'No attempt has ended yet.' }) :
        table(['#', 'Worker', 'Start', ['Ran', 'num'], 'Outcome', 'Message'], t.attempts.map((a) => el('tr', { 'data-attempt': a.attempt },
          el('td', { text: String(a.attempt) }), el('td', { text: a.worker }), el('td', { text: fmtTime(a.started_ms) }),
          el('td', { class: 'num', text: a.started_ms ? fmtDur(a.ended_ms - a.started_ms) : '—' }),
          el('td', null, badge(a.outcome)), el('td', { class: 'wrap', text: a.message })))));
      fill(data,
        el('h2', { text: 'Payload' }), el('div', { class: 'json', id: 'payload' }, jsonTree(t.payload)),
        t.result ? [el('h2', { text: 'Result' }), el('div', { class: 'json', id: 'result' }, jsonTree(t.result))] : null);
    }
    async function refresh() {
      const t = await api(path);
      render(t);
      await loadLog();
    }
    return {
      async init(root) {
        head = el('h1');
        progressBox = el('div', { class: 'progress', id: 'progress' });
        actions = el('div', { class: 'actions', id: 'actions' });
        facts = el('div');
        attempts = el('div', { id: 'attempts' });
        data = el('div');
        log = el('pre', { class: 'log', id: 'log' });
        logMeta = el('span', { class: 'muted' });
        root.append(el('p', null, el('a', { href: '#/tasks', text: '← tasks' })), head, progressBox, actions,
          el('div', { class: 'cols' },
            el('div', { class: 'panel' }, facts),
            el('div', null,
              el('div', { class: 'panel' }, el('h2', { text: 'Attempts' }), attempts),
              el('div', { class: 'panel' }, el('h2', null, 'Log ', logMeta), log))),
          el('div', { class: 'panel' }, data));
        await refresh();
      },
      refresh,
    };
  }

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      toast('copied ' + text, true);
    } catch (e) {
      // No clipboard permission (plain HTTP, say): select the text instead.
      const node = document.getElementById('task-id');
      const range = document.createRange();
      range.selectNodeContents(node);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      toast('id selected: press Ctrl+C to copy', true);
    }
  }

  // ------------------------------------------------------------ jobs

  function firingCell(f) {
    const st = f.status || 'expired';
    const ran = f.started_ms ? fmtDur((f.ended_ms || Date.now()) - f.started_ms) : '';
    return el('a', { href: '#/tasks/' + encodeURIComponent(f.task), title: f.task + ' · slot ' + fmtTime(f.slot_ms), class: 'firing' },
      badge(st), ran ? el('span', { class: 'muted', text: ' ' + ran + ' ' }) : ' ');
  }

  function jobActions(j, after) {
    if (!canWrite() || !j.spec) return [];
    const path = 'jobs/' + encodeURIComponent(j.id);
    const remove = actionButton('Remove', () => {
      if (remove.dataset.armed !== '1') {
        remove.dataset.armed = '1';
        remove.textContent = 'Really remove?';
        remove.dataset.action = 'confirm-remove';
        setTimeout(() => { remove.dataset.armed = ''; remove.textContent = 'Remove'; remove.dataset.action = 'remove'; }, 5000);
        return;
      }
      act('Remove ' + j.id, path, { method: 'DELETE' }, after);
    }, 'danger');
    return [
      actionButton(j.spec.enabled ? 'Disable' : 'Enable', () => act((j.spec.enabled ? 'Disable ' : 'Enable ') + j.id, path + (j.spec.enabled ? '/disable' : '/enable'))),
      actionButton('Trigger', () => act('Trigger ' + j.id, path + '/trigger')),
      remove,
    ];
  }

  function jobsPage(params) {
    let body;
    const cursor = params.get('cursor') || '';
    async function refresh() {
      const page = await api('joblist' + query({ cursor, limit: 50, fires: 5, firings: 5 }));
      const rows = page.jobs.map((j) => el('tr', { 'data-job': j.id },
        el('td', { class: 'mono' }, el('a', { href: '#/jobs/' + encodeURIComponent(j.id), text: j.id })),
        el('td', { class: 'mono', text: j.spec && j.spec.cron ? j.spec.cron : 'on demand' }),
        el('td', { text: j.spec ? j.spec.timezone || 'UTC' : '—' }),
        el('td', null, j.spec ? badge(j.spec.enabled ? 'enabled' : 'disabled') : '—'),
        el('td', { class: 'next-fires' }, j.next_fires.length ? j.next_fires.map((t) => el('div', { class: 'mono', 'data-fire': t, text: fmtTime(t) })) : el('span', { class: 'muted', text: '—' })),
        el('td', null, j.firings.length ? j.firings.map(firingCell) : el('span', { class: 'muted', text: 'none yet' })),
        el('td', { class: 'num', text: j.fired + ' / ' + j.skips }),
        el('td', { class: 'wrap error', text: j.error || (j.events[0] || '') }),
        el('td', null, el('div', { class: 'actions' }, jobActions(j)))));
      fill(body,
        page.jobs.length === 0 ? el('p', { class: 'muted', text: 'No job on this page.' }) :
          table(['Job', 'Cron', 'Zone', 'State', 'Next 5', 'Last firings', ['Fired / skipped', 'num'], 'Error or last event', ''], rows, { id: 'jobs' }),
        el('div', { class: 'pager' },
          cursor ? el('a', { href: '#/jobs', text: '↑ first page' }) : null,
          page.cursor ? el('a', { href: '#/jobs' + query({ cursor: page.cursor }), text: 'next page →' }) : null));
    }
    return {
      async init(root) {
        body = el('div', { class: 'panel' });
        root.append(el('h1', { text: 'Jobs' }), body);
        await refresh();
      },
      refresh,
    };
  }

  function jobPage(id) {
    let body;
    const path = 'jobs/' + encodeURIComponent(id);
    async function refresh() {
      const [job, next, tasks] = await Promise.all([
        api(path), api(path + '/next' + query({ count: 10 })),
        api('search' + query({ job: id, limit: 20, window: 1000 })),
      ]);
      const view = { id, spec: job.spec };
      const spec = job.spec;
      fill(body,
        el('div', { class: 'actions', id: 'actions' }, jobActions(view, () => { location.hash = '#/jobs'; })),
        el('div', { class: 'panel' }, el('dl', { class: 'kv' },
          [['executor', spec.executor], ['cron', spec.cron || 'on demand'], ['zone', spec.timezone || 'UTC'],
            ['enabled', String(spec.enabled)], ['concurrency', spec.concurrency], ['misfire', spec.misfire],
            ['timeout', fmtDur(spec.timeout_ms)], ['retries', String(spec.max_retries)],
            ['fired / skipped', job.fired + ' / ' + job.skips]].map(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]))),
        el('div', { class: 'panel' }, el('h2', { text: 'Next fire times' }),
          next.next.length ? el('ol', { class: 'next-fires' }, next.next.map((t) => el('li', { class: 'mono', 'data-fire': t, text: fmtTime(t) + '  (in ' + fmtDur(t - Date.now()) + ')' }))) : el('p', { class: 'muted', text: 'none (on demand or disabled)' })),
        el('div', { class: 'panel' }, el('h2', { text: 'Latest tasks (among the newest 1,000 of the cluster)' }),
          tasks.tasks.length === 0 ? el('p', { class: 'muted', text: 'none' }) :
            table(['Task', 'Status', 'Created', ['Ran', 'num'], 'Error'], tasks.tasks.map((t) => el('tr', null,
              el('td', { class: 'mono' }, el('a', { href: '#/tasks/' + encodeURIComponent(t.id), text: t.id })),
              el('td', null, badge(t.status)), el('td', { text: fmtTime(t.created_ms) }),
              el('td', { class: 'num', text: t.started_ms ? fmtDur((t.ended_ms || Date.now()) - t.started_ms) : '—' }),
              el('td', { class: 'wrap error', text: t.status === 'success' ? '' : t.error || '' }))))),
        el('div', { class: 'panel' }, el('h2', { text: 'History' }),
          job.history.length ? el('pre', { class: 'log', text: job.history.map((l) => {
            const [at, ...rest] = l.split(' ');
            return fmtTime(Number(at)) + '  ' + rest.join(' ');
          }).join('\n') }) : el('p', { class: 'muted', text: 'nothing yet' })));
    }
    return {
      async init(root) {
        body = el('div');
        root.append(el('p', null, el('a', { href: '#/jobs', text: '← jobs' })), el('h1', null, el('span', { class: 'mono', text: id })), body);
        await refresh();
      },
      refresh,
    };
  }

  // ------------------------------------------------------------ workers

  function workersPage() {
    let body;
    async function refresh() {
      const [nodes, stats] = await Promise.all([api('workers'), api('stats')]);
      const held = new Map(stats.nodes.map((n) => [n.id, n]));
      const now = stats.time_ms;
      fill(body, nodes.length === 0 ? el('p', { class: 'muted', text: 'No live node.' }) :
        table(['Node', 'Role', 'Host', ['Pid', 'num'], 'Heartbeat', 'Held / capacity', ['Running', 'num'], 'Executors', 'Tags', ['Weight', 'num'], 'State'],
          nodes.map((n) => {
            const s = held.get(n.id) || { queued: 0, running: 0 };
            return el('tr', { 'data-node': n.id },
              el('td', { class: 'mono' }, n.leader ? el('span', { class: 'star', title: 'leader', 'data-leader': '1', text: '★ ' }) : null, n.id),
              el('td', { text: n.role }), el('td', { text: n.host }), el('td', { class: 'num', text: String(n.pid) }),
              el('td', { text: fmtDur(now - n.heartbeat_ms) + ' ago' }),
              el('td', null, n.capacity > 0 ? el('div', { class: 'load' }, meter(s.queued + s.running, n.capacity), el('span', { class: 'mono', text: (s.queued + s.running) + ' / ' + n.capacity })) : '—'),
              el('td', { class: 'num', text: String(s.running) }),
              el('td', null, n.executors.map((e) => el('span', { class: 'tag', text: e }))),
              el('td', null, n.tags.length ? n.tags.map((t) => el('span', { class: 'tag', text: t })) : '—'),
              el('td', { class: 'num', text: String(n.weight) }),
              el('td', null, n.draining ? badge('draining') : badge('active')));
          }), { id: 'workers' }));
    }
    return {
      async init(root) {
        body = el('div', { class: 'panel' });
        root.append(el('h1', { text: 'Workers' }), body);
        await refresh();
      },
      refresh,
    };
  }

  // ------------------------------------------------------------ failures

  function failuresPage() {
    let body;
    async function refresh() {
      const f = await api('failures');
      const looked = 'Looked at the newest ' + f.scanned.toLocaleString() + ' tasks' + (f.oldest_ms ? ', back to ' + fmtTime(f.oldest_ms) : '') + (f.complete ? ' (all there are).' : '.');
      fill(body,
        el('div', { class: 'grid' },
          el('div', { class: 'card' }, el('div', { class: 'label', text: 'Failed, last hour' }), el('div', { class: 'value', id: 'failed-hour', text: String(f.last_hour) })),
          el('div', { class: 'card' }, el('div', { class: 'label', text: 'Failed, last 24 h' }), el('div', { class: 'value', id: 'failed-day', text: String(f.last_day) }))),
        el('p', { class: 'muted', text: looked }),
        el('div', { class: 'panel' }, f.groups.length === 0 ? el('p', { class: 'muted', text: 'No failed task in the last 24 h.' }) :
          table(['Error (numbers and ids as #)', ['Last hour', 'num'], ['Last 24 h', 'num'], 'Latest', ''], f.groups.map((g) => el('tr', { 'data-group': g.pattern },
            el('td', { class: 'wrap' }, el('div', { class: 'mono', text: g.pattern || '(no message)' }), el('div', { class: 'muted', text: 'e.g. ' + g.example })),
            el('td', { class: 'num', text: String(g.last_hour) }),
            el('td', { class: 'num', text: String(g.last_day) }),
            el('td', null, el('a', { href: '#/tasks/' + encodeURIComponent(g.last_id), text: ago(g.last_ms) })),
            el('td', null, el('a', { href: '#/tasks' + query({ status: 'failed', error_group: g.pattern }), text: 'tasks →' })))), { id: 'failures' })));
    }
    return {
      async init(root) {
        body = el('div');
        root.append(el('h1', { text: 'Failures' }), body);
        await refresh();
      },
      refresh,
    };
  }

  // ------------------------------------------------------------ start

  function applyTheme(theme) {
    const dark = theme ? theme === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
    document.documentElement.dataset.theme = dark ? 'dark' : 'light';
    document.getElementById('theme').textContent = dark ? 'Light' : 'Dark';
  }

  async function start() {
    document.getElementById('login').hidden = true;
    let r;
    try {
      r = await checkAccess();
    } catch (e) {
      document.getElementById('main').replaceChildren(el('p', { class: 'error', text: e.message }));
      return;
    }
    if (r.access === 'none') {
      showLogin(state.token ? 'The stored token is no longer accepted.' : '');
      return;
    }
    route();
  }

  function boot() {
    applyTheme(localStorage.getItem(THEME_KEY));
    document.getElementById('theme').addEventListener('click', () => {
      const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
      localStorage.setItem(THEME_KEY, next);
      applyTheme(next);
    });
    const refresh = document.getElementById('refresh');
    const saved = localStorage.getItem(REFRESH_KEY);
    if (saved !== null && [...refresh.options].some((o) => o.value === saved)) refresh.value = saved;
    refresh.addEventListener('change', () => {
      localStorage.setItem(REFRESH_KEY, refresh.value);
      refreshNow();
    });
    document.getElementById('login-form').addEventListener('submit', signIn);
    document.getElementById('logout').addEventListener('click', signOut);
    window.addEventListener('hashchange', () => { if (state.access && state.access !== 'none') route(); });
    start();
  }

  boot();
}());
