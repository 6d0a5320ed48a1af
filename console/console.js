/*
 * awaitd console: a single page over the daemon's own JSON APIs (/health,
 * /metrics, /queues, /timers), polled every POLL_MS. No framework, nothing
 * fetched from elsewhere. Every value from the daemon (queue names, job
 * payloads, errors) is put into the page as text (textContent, text
 * nodes), never parsed as HTML. With [auth] the token is asked for once,
 * kept in sessionStorage and sent as a bearer header; no cookies.
 */
'use strict';
(function () {
  const POLL_MS = 1500;
  const HISTORY = 60; /* samples per sparkline */
  const TOKEN_KEY = 'awaitd-token';
  const main = document.getElementById('main');

  /* ---- DOM helpers: text only ---- */
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === undefined || kid === null || kid === false) continue;
      e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return e;
  }
  function fmt(n) {
    if (n === undefined || n === null || Number.isNaN(n)) return '–';
    if (typeof n !== 'number') return String(n);
    if (Math.abs(n) >= 1e9) return (n / 1e9).toFixed(2) + ' G';
    if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + ' M';
    if (Number.isInteger(n)) return String(n);
    return n >= 100 ? n.toFixed(0) : n.toFixed(n >= 10 ? 1 : 2);
  }
  function bytes(n) {
    if (n === undefined || n === null) return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
  }
  function duration(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + (d || h || m ? m + 'm ' : '') + (s % 60) + 's';
  }
  function relTime(iso) {
    if (!iso) return '–';
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return iso;
    const d = (t - Date.now()) / 1000;
    const a = Math.abs(d) < 1 ? 'now' : (d > 0 ? 'in ' + duration(d) : duration(-d) + ' ago');
    return iso + ' (' + a + ')';
  }
  function sparkline(values, big) {
    const NS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('class', big ? 'spark big' : 'spark');
    svg.setAttribute('viewBox', '0 0 100 20');
    svg.setAttribute('preserveAspectRatio', 'none');
    const vs = values.length > 1 ? values : [values[0] || 0, values[0] || 0];
    const max = Math.max(...vs, 1e-9);
    const pts = vs.map((v, i) => {
      const x = i * 100 / (HISTORY - 1) + (HISTORY - vs.length) * 100 / (HISTORY - 1);
      return x.toFixed(1) + ',' + (19 - v / max * 18).toFixed(1);
    });
    const pl = document.createElementNS(NS, 'polyline');
    pl.setAttribute('points', pts.join(' '));
    svg.append(pl);
    const title = document.createElementNS(NS, 'title');
    title.textContent = 'last ' + vs.length + ' samples, max ' + fmt(max) + '/s';
    svg.append(title);
    return svg;
  }
  function pushHist(map, key, v) {
    const h = map.get(key) || [];
    h.push(v);
    if (h.length > HISTORY) h.shift();
    map.set(key, h);
    return h;
  }
  function flash(msg, isError) {
    const f = document.getElementById('flash');
    f.textContent = msg;
    f.className = isError ? 'error' : '';
    f.hidden = false;
    clearTimeout(flash.t);
    flash.t = setTimeout(() => { f.hidden = true; }, isError ? 8000 : 4000);
  }

  /* ---- the API ---- */
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function api(method, path, body, ctype) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined && ctype) headers['Content-Type'] = ctype;
    const r = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit' });
    if (r.status === 401) {
      askToken(token ? 'The token was refused.' : '');
      throw new ApiError(401, 'a token is needed');
    }
    return r;
  }
  async function apiJson(method, path, obj) {
    const r = await api(method, path, obj === undefined ? undefined : JSON.stringify(obj),
      obj === undefined ? null : 'application/json');
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!r.ok) throw new ApiError(r.status, (data && data.error) || (r.status + ' ' + text));
    return { status: r.status, data };
  }
  const qpath = (q, rest) => '/queues/' + encodeURIComponent(q) + (rest || '');
  async function act(what, fn) {
    try {
      const res = await fn();
      flash(what + ': ' + (res && res.data ? JSON.stringify(res.data) : 'done'));
      refreshNow();
      return res;
    } catch (e) {
      if (e.status !== 401) flash(what + ' failed: ' + e.message, true);
      return null;
    }
  }

  /* ---- token ---- */
  const login = document.getElementById('login');
  function askToken(msg) {
    document.getElementById('login-error').textContent = msg || '';
    login.hidden = false;
    main.hidden = true;
    document.getElementById('token').focus();
  }
  login.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = document.getElementById('token').value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    document.getElementById('token').value = '';
    login.hidden = true;
    main.hidden = false;
    route();
  });
  const forget = document.getElementById('forget');
  forget.addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); route(); });

  /* ---- metrics ---- */
  function parseMetrics(text) {
    const out = [];
    const re = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
    const lre = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      const m = re.exec(line);
      if (!m) continue;
      const labels = {};
      if (m[2]) for (const l of m[2].matchAll(lre)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
      out.push({ name: m[1], labels, value: Number(m[3]) });
    }
    return {
      all: out,
      get(name, labels) {
        const s = out.find((x) => x.name === name &&
          Object.entries(labels || {}).every(([k, v]) => x.labels[k] === v));
        return s ? s.value : undefined;
      },
      sum(name) {
        const ss = out.filter((x) => x.name === name);
        return ss.length ? ss.reduce((a, x) => a + x.value, 0) : undefined;
      },
      series(name) { return out.filter((x) => x.name === name); },
    };
  }
  /* Quantile q of a Prometheus histogram (cumulative buckets with le). */
  function histQuantile(series, q) {
    const b = series.map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), n: s.value }))
      .sort((x, y) => x.le - y.le);
    if (!b.length || !b[b.length - 1].n) return undefined;
    const want = q * b[b.length - 1].n;
    const hit = b.find((x) => x.n >= want);
    return hit ? hit.le : undefined;
  }

  /* ---- pages ---- */
  let page = null;          /* {refresh: async fn} of the page shown */
  let gen = 0;              /* bumps on every route: stale refreshes drop their results */
  let pollTimer = null;
  const rates = { prev: null, hist: new Map() };  /* overview counters */
  const qrates = { prev: new Map(), hist: new Map() }; /* per queue: put/ack */

  function card(label, key) {
    return el('div', { class: 'card' }, el('div', { class: 'label', text: label }),
      el('div', { class: 'value', 'data-field': key, text: '–' }));
  }
  function setField(root, key, v, cls) {
    const e = root.querySelector('[data-field="' + key + '"]');
    if (!e) return;
    e.textContent = v;
    if (cls !== undefined) e.className = 'value ' + cls;
  }

  function overviewPage() {
    const cards = el('div', { class: 'cards' },
      card('Status', 'status'), card('Version', 'version'), card('Uptime', 'uptime'),
      card('Connections open', 'connections'), card('Requests/s', 'rps'),
      card('Errors/s (4xx+5xx)', 'eps'), card('Bytes in/s', 'bin'), card('Bytes out/s', 'bout'),
      card('Journal', 'journal'), card('Journal file', 'jfile'), card('Queues', 'queues'),
      card('Jobs ready', 'ready'), card('Jobs reserved', 'reserved'), card('Jobs delayed', 'delayed'),
      card('Dead letters', 'dead'), card('Timers scheduled', 'timers'),
      card('Timer lateness p50 / p99', 'lateness'), card('Queue memory', 'qmem'),
      card('Request latency p50 / p99', 'reqlat'));
    const chart = el('div', {});
    const note = el('p', { class: 'note' });
    main.replaceChildren(el('h1', { text: 'Overview' }), cards,
      el('h2', { text: 'Requests per second' }), chart, note);
    return {
      async refresh() {
        const h = await fetch('/health', { cache: 'no-store' }).then((r) => r.json());
        setField(cards, 'status', h.status, h.status === 'ok' ? 'ok' : 'warn');
        setField(cards, 'version', h.version);
        setField(cards, 'uptime', duration(h.uptime_seconds));
        setField(cards, 'connections', fmt(h.connections));
        const r = await api('GET', '/metrics');
        if (!r.ok) throw new ApiError(r.status, 'GET /metrics: ' + r.status);
        const m = parseMetrics(await r.text());
        const now = performance.now();
        const cur = { t: now, req: m.sum('awaitd_requests_total'),
          err: (m.get('awaitd_requests_total', { class: '4xx' }) || 0) +
               (m.get('awaitd_requests_total', { class: '5xx' }) || 0),
          bin: m.get('awaitd_bytes_in_total'), bout: m.get('awaitd_bytes_out_total') };
        const p = rates.prev;
        if (p) {
          const dt = (cur.t - p.t) / 1000;
          const rps = (cur.req - p.req) / dt;
          setField(cards, 'rps', fmt(rps));
          setField(cards, 'eps', fmt((cur.err - p.err) / dt));
          setField(cards, 'bin', bytes(Math.round((cur.bin - p.bin) / dt)));
          setField(cards, 'bout', bytes(Math.round((cur.bout - p.bout) / dt)));
          chart.replaceChildren(sparkline(pushHist(rates.hist, 'rps', rps), true));
        }
        rates.prev = cur;
        const jh = m.get('awaitd_journal_healthy');
        setField(cards, 'journal', jh === undefined ? 'no journal' : jh ? 'healthy' : 'failing',
          jh === undefined ? 'muted' : jh ? 'ok' : 'error');
        setField(cards, 'jfile', bytes(m.get('awaitd_journal_file_bytes')));
        setField(cards, 'queues', fmt(m.get('awaitd_queues')));
        for (const s of ['ready', 'reserved', 'delayed', 'dead'])
          setField(cards, s, fmt(m.get('awaitd_queue_jobs', { state: s })));
        setField(cards, 'timers', fmt(m.get('awaitd_timers', { state: 'scheduled' })));
        const lat = m.series('awaitd_timer_lateness_seconds_bucket');
        const ms = (s) => (s === undefined || s === Infinity ? s : +(s * 1000).toPrecision(3));
        const p50 = ms(histQuantile(lat, 0.5)), p99 = ms(histQuantile(lat, 0.99));
        setField(cards, 'lateness', p50 === undefined ? 'no fires yet' : '≤' + p50 + ' / ≤' + p99 + ' ms');
        setField(cards, 'qmem', bytes(m.get('awaitd_queue_memory_bytes')));
        /* Every route class but the console's and /metrics' own reads, summed by le. */
        const byLe = new Map();
        for (const s of m.series('awaitd_http_request_duration_seconds_bucket'))
          if (s.labels.route !== 'console' && s.labels.route !== 'metrics')
            byLe.set(s.labels.le, (byLe.get(s.labels.le) || 0) + s.value);
        const req = [...byLe].map(([le, value]) => ({ labels: { le }, value }));
        const r50 = ms(histQuantile(req, 0.5)), r99 = ms(histQuantile(req, 0.99));
        setField(cards, 'reqlat', r50 === undefined ? 'no requests yet' : '≤' + r50 + ' / ≤' + r99 + ' ms');
        note.textContent = 'Timer lateness is the histogram awaitd_timer_lateness_seconds (bucket ' +
          'bounds shown, in ms); request latency, since start, from awaitd_http_request_duration_seconds ' +
          '(all routes but /console and /metrics).';
      },
    };
  }

  function queuesPage() {
    const tbody = el('tbody');
    const more = el('p', { class: 'note' });
    const err = el('p', { class: 'error' });
    let cursor = null;
    const name = el('input', { name: 'name', placeholder: 'name', required: true, pattern: '[A-Za-z0-9_.\\-]{1,64}' });
    const maxsize = el('input', { name: 'maxsize', type: 'number', min: 0, placeholder: '0 = unbounded' });
    const lease = el('input', { name: 'lease', type: 'number', min: 0, step: 'any', placeholder: '30' });
    const attempts = el('input', { name: 'max_attempts', type: 'number', min: 1, max: 65535, placeholder: '5' });
    const form = el('form', { class: 'inline', id: 'create-queue' },
      el('label', {}, 'Name', name), el('label', {}, 'maxsize', maxsize),
      el('label', {}, 'lease (s)', lease), el('label', {}, 'max_attempts', attempts),
      el('button', { type: 'submit', text: 'Create queue' }));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const set = {};
      if (maxsize.value !== '') set.maxsize = Number(maxsize.value);
      if (lease.value !== '') set.lease = Number(lease.value);
      if (attempts.value !== '') set.max_attempts = Number(attempts.value);
      const n = name.value;
      act('create ' + n, () => apiJson('PUT', qpath(n), set)).then((r) => { if (r) form.reset(); });
    });
    const th = (t, num) => el('th', { class: num ? 'num' : null, text: t });
    main.replaceChildren(el('h1', { text: 'Queues' }), form, err,
      el('table', { id: 'queues' }, el('thead', {}, el('tr', {}, th('Name'), th('Size', 1), th('Max', 1),
        th('Reserved', 1), th('Delayed', 1), th('Dead', 1), th('Getters', 1), th('Putters', 1),
        th('Put/s'), th('Ack/s'), th('State'))), tbody), more);
    return {
      async refresh() {
        const res = await apiJson('GET', '/queues?limit=1000' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
        const now = performance.now();
        const rows = res.data.queues.map((q) => {
          const prev = qrates.prev.get(q.name);
          let put = null, ack = null;
          if (prev) {
            const dt = (now - prev.t) / 1000;
            put = (q.total_put - prev.put) / dt;
            ack = (q.total_acked - prev.ack) / dt;
            pushHist(qrates.hist, q.name + '\u0000put', put);
            pushHist(qrates.hist, q.name + '\u0000ack', ack);
          }
          qrates.prev.set(q.name, { t: now, put: q.total_put, ack: q.total_acked });
          const num = (k, v) => el('td', { class: 'num', 'data-field': k, text: fmt(v) });
          const spark = (k, v) => el('td', { 'data-field': k },
            sparkline(qrates.hist.get(q.name + '\u0000' + k) || []), ' ', v === null ? '' : fmt(v));
          return el('tr', { 'data-queue': q.name },
            el('td', {}, el('a', { href: '#/queue/' + encodeURIComponent(q.name), text: q.name })),
            num('size', q.size), num('maxsize', q.maxsize || '∞'), num('reserved', q.reserved),
            num('delayed', q.delayed), num('dead', q.dead), num('getters', q.getters),
            num('putters', q.putters), spark('put', put), spark('ack', ack),
            el('td', { text: q.shutdown === false ? 'open' : q.shutdown === true ? 'shut down' : 'shut down (immediate)' }));
        });
        tbody.replaceChildren(...rows);
        more.replaceChildren(rows.length ? '' : 'No queues yet.',
          res.data.next_cursor ? el('button', { type: 'button', text: 'Next page',
            onclick: () => { cursor = res.data.next_cursor; refreshNow(); } }) : '',
          cursor ? el('button', { type: 'button', text: 'First page',
            onclick: () => { cursor = null; refreshNow(); } }) : '');
      },
    };
  }

  const JOBS_SHOWN = 50; /* jobs listed per state on a queue's page */
  const REASONS = { nacked: 'nacked on its last attempt', lease_expired: 'last lease ran out',
    unknown: 'not recorded' };

  function queuePage(q) {
    const stats = el('div', { class: 'cards' });
    const charts = el('div', { class: 'cards' });
    const deadBody = el('tbody');
    const jobBodies = { ready: el('tbody'), reserved: el('tbody'), delayed: el('tbody') };
    const jobsNote = el('p', { class: 'note' });
    const peekOut = el('div', {});
    const title = el('h1', {}, 'Queue ', el('code', { id: 'qname', text: q }));
    const confirmAct = (what, msg, fn) => () => { if (window.confirm(msg)) act(what, fn); };
    const actions = el('div', { class: 'actions' },
      el('button', { type: 'button', id: 'requeue-all', text: 'Requeue all dead',
        onclick: () => act('requeue all', () => apiJson('POST', qpath(q, '/dead/requeue'))) }),
      el('button', { type: 'button', id: 'purge-dead', class: 'danger', text: 'Purge dead letters',
        onclick: confirmAct('purge dead', 'Delete every dead letter of ' + q + '?', () => apiJson('POST', qpath(q, '/dead/purge'))) }),
      el('button', { type: 'button', id: 'purge', class: 'danger', text: 'Purge ready and delayed',
        onclick: confirmAct('purge', 'Delete every ready and delayed job of ' + q + '?', () => apiJson('POST', qpath(q, '/purge'))) }),
      el('button', { type: 'button', id: 'shutdown', text: 'Shut down',
        onclick: confirmAct('shutdown', 'Shut down ' + q + ' (no more puts; getters drain it)?', () => apiJson('POST', qpath(q, '/shutdown'))) }),
      el('button', { type: 'button', id: 'shutdown-now', class: 'danger', text: 'Shut down now',
        onclick: confirmAct('shutdown immediate', 'Shut down ' + q + ' now, dropping its ready jobs?', () => apiJson('POST', qpath(q, '/shutdown?immediate=1'))) }),
      el('button', { type: 'button', id: 'delete-queue', class: 'danger', text: 'Delete queue',
        onclick: () => {
          if (!window.confirm('Delete queue ' + q + ' with its jobs and dead letters?')) return;
          act('delete ' + q, () => apiJson('DELETE', qpath(q))).then((r) => { if (r) location.hash = '#/queues'; });
        } }));
    const payload = el('textarea', { name: 'payload', rows: 1, cols: 30, placeholder: 'payload' });
    const delay = el('input', { name: 'delay', type: 'number', min: 0, step: 'any', placeholder: '0' });
    const prio = el('input', { name: 'priority', type: 'number', step: 1, placeholder: '0' });
    const putForm = el('form', { class: 'inline', id: 'put-job' }, el('label', {}, 'Payload', payload),
      el('label', {}, 'delay (s)', delay), el('label', {}, 'priority', prio),
      el('button', { type: 'submit', text: 'Put job' }));
    putForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const qs = [];
      if (delay.value !== '') qs.push('delay=' + encodeURIComponent(delay.value));
      if (prio.value !== '') qs.push('priority=' + encodeURIComponent(prio.value));
      act('put', async () => {
        const r = await api('POST', qpath(q, '/jobs' + (qs.length ? '?' + qs.join('&') : '')),
          payload.value, 'application/octet-stream');
        const d = await r.json().catch(() => null);
        if (!r.ok) throw new ApiError(r.status, (d && d.error) || String(r.status));
        return { data: d };
      }).then((r) => { if (r) putForm.reset(); });
    });
    const peekId = el('input', { name: 'id', type: 'number', min: 1, placeholder: 'job id', required: true });
    const peekForm = el('form', { class: 'inline', id: 'peek-job' }, el('label', {}, 'Job id', peekId),
      el('button', { type: 'submit', text: 'Peek' }));
    peekForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const r = await api('GET', qpath(q, '/jobs/' + encodeURIComponent(peekId.value)));
        if (!r.ok) {
          const d = await r.json().catch(() => null);
          peekOut.replaceChildren(el('p', { class: 'error', text: (d && d.error) || r.status }));
          return;
        }
        const text = new TextDecoder().decode(new Uint8Array(await r.arrayBuffer()));
        peekOut.replaceChildren(el('p', {}, 'Job ' + r.headers.get('Job-Id') + ': ' +
          r.headers.get('Job-State') + ', attempt ' + r.headers.get('Job-Attempt') + ', priority ' +
          r.headers.get('Job-Priority')), el('pre', { class: 'payload', text }));
      } catch (e) { if (e.status !== 401) peekOut.replaceChildren(el('p', { class: 'error', text: e.message })); }
    });
    const th = (t, num) => el('th', { class: num ? 'num' : null, text: t });
    main.replaceChildren(title, stats, charts, actions,
      el('h2', { text: 'Ready (next to be delivered first)' }),
      el('table', { id: 'ready' }, el('thead', {}, el('tr', {}, th('Id', 1), th('Priority', 1),
        th('Attempts', 1), th('Bytes', 1), th('Payload'))), jobBodies.ready),
      el('h2', { text: 'Reserved' }),
      el('table', { id: 'reserved' }, el('thead', {}, el('tr', {}, th('Id', 1), th('Attempt', 1),
        th('Lease deadline'), th('Bytes', 1), th('Payload'))), jobBodies.reserved),
      el('h2', { text: 'Delayed' }),
      el('table', { id: 'delayed' }, el('thead', {}, el('tr', {}, th('Id', 1), th('Priority', 1),
        th('Due'), th('Bytes', 1), th('Payload'))), jobBodies.delayed),
      el('h2', { text: 'Dead letters' }),
      el('table', { id: 'dead' }, el('thead', {}, el('tr', {}, th('Id', 1), th('Priority', 1),
        th('Attempts', 1), th('Reason'), th('Error'), th('Bytes', 1), th('Payload'), th(''))), deadBody),
      jobsNote,
      el('h2', { text: 'Peek a job' }), peekForm, peekOut,
      el('h2', { text: 'Put a job' }), putForm);
    const K = [['size', 'Ready'], ['reserved', 'Reserved'], ['delayed', 'Delayed'], ['dead', 'Dead'],
      ['unfinished', 'Unfinished'], ['getters', 'Waiting getters'], ['putters', 'Waiting putters'],
      ['joiners', 'Joiners'], ['maxsize', 'maxsize'], ['lease', 'Lease (s)'],
      ['max_attempts', 'max_attempts'], ['max_payload', 'max_payload'], ['total_put', 'Put (total)'],
      ['total_acked', 'Acked (total)'], ['total_redelivered', 'Redelivered (total)'],
      ['total_dead', 'Dead (total)'], ['shutdown', 'Shut down'], ['result_ttl', 'Result ttl (s)'],
      ['results', 'Results kept']];
    stats.append(...K.map(([k, label]) => card(label, k)));
    return {
      async refresh() {
        let s;
        try {
          s = (await apiJson('GET', qpath(q))).data;
        } catch (e) {
          if (e.status === 404 || e.status === 400) {
            stats.replaceChildren(el('p', { class: 'error', text: e.message }));
            actions.hidden = true;
            return;
          }
          throw e;
        }
        for (const [k] of K)
          setField(stats, k, k === 'max_payload' ? bytes(s[k]) : k === 'shutdown'
            ? (s[k] === false ? 'no' : s[k] === true ? 'yes' : s[k]) : fmt(s[k]));
        const now = performance.now();
        const prev = qrates.prev.get(q);
        if (prev) {
          const dt = (now - prev.t) / 1000;
          pushHist(qrates.hist, q + '\u0000put', (s.total_put - prev.put) / dt);
          pushHist(qrates.hist, q + '\u0000ack', (s.total_acked - prev.ack) / dt);
        }
        qrates.prev.set(q, { t: now, put: s.total_put, ack: s.total_acked });
        charts.replaceChildren(
          el('div', { class: 'card' }, el('div', { class: 'label', text: 'Put/s' }),
            sparkline(qrates.hist.get(q + '\u0000put') || [], true)),
          el('div', { class: 'card' }, el('div', { class: 'label', text: 'Ack/s' }),
            sparkline(qrates.hist.get(q + '\u0000ack') || [], true)));
        /* Every job list from GET /queues/{q}/jobs?state=... (docs/QUEUES.md "Seeing jobs"). */
        const counts = { ready: s.size, reserved: s.reserved, delayed: s.delayed, dead: s.dead };
        const page = async (state) => {
          /* A listing reads every job the daemon holds: skip the states with none. */
          if (counts[state] === 0) return { jobs: [], more: false };
          try {
            return (await apiJson('GET', qpath(q, '/jobs?state=' + state + '&limit=' + JOBS_SHOWN +
              '&preview=200'))).data;
          } catch (e) {
            if (e.status === 501) return null; /* a backend without job listing (Redis) */
            throw e;
          }
        };
        const pages = await Promise.all(['ready', 'reserved', 'delayed', 'dead'].map(page));
        if (pages.some((pg) => pg === null)) {
          jobsNote.textContent = 'This queue backend does not list jobs (501): dead letters come ' +
            'from GET /queues/{q}/dead, without payloads.';
          const d = (await apiJson('GET', qpath(q, '/dead?limit=' + JOBS_SHOWN))).data.dead;
          pages[3] = { jobs: d.map((j) => Object.assign({ payload: '', truncated: true }, j)), more: false };
          for (const k of [0, 1, 2]) pages[k] = pages[k] || { jobs: [], more: false };
        } else {
          jobsNote.textContent = 'Up to ' + JOBS_SHOWN + ' jobs of each state, payloads cut at 200 ' +
            'bytes (peek a job by id for all of it).';
        }
        const payloadCell = (j) => el('td', { class: 'payload', text: j.payload + (j.truncated ? ' …' : '') });
        const when = (t) => relTime(new Date(t * 1000).toISOString());
        const fill = (body, pg, row, cols, empty) => {
          const rows = pg.jobs.map(row);
          if (pg.more) rows.push(el('tr', {}, el('td', { colspan: cols, class: 'muted', text: 'and more…' })));
          if (!pg.jobs.length) rows.push(el('tr', {}, el('td', { colspan: cols, class: 'muted', text: empty })));
          body.replaceChildren(...rows);
        };
        fill(jobBodies.ready, pages[0], (j) => el('tr', { 'data-job': j.id },
          el('td', { class: 'num', text: j.id }), el('td', { class: 'num', text: j.priority }),
          el('td', { class: 'num', text: j.attempt }), el('td', { class: 'num', text: j.len }),
          payloadCell(j)), 5, 'No ready jobs.');
        fill(jobBodies.reserved, pages[1], (j) => el('tr', { 'data-job': j.id },
          el('td', { class: 'num', text: j.id }), el('td', { class: 'num', text: j.attempt }),
          el('td', { class: 'deadline', text: when(j.lease_deadline) }),
          el('td', { class: 'num', text: j.len }), payloadCell(j)), 5, 'No reserved jobs.');
        fill(jobBodies.delayed, pages[2], (j) => el('tr', { 'data-job': j.id },
          el('td', { class: 'num', text: j.id }), el('td', { class: 'num', text: j.priority }),
          el('td', { class: 'due', text: when(j.due) }),
          el('td', { class: 'num', text: j.len }), payloadCell(j)), 5, 'No delayed jobs.');
        const dead = pages[3].jobs;
        const rows = dead.map((j) => {
          return el('tr', { 'data-job': j.id },
            el('td', { class: 'num', text: j.id }), el('td', { class: 'num', text: j.priority }),
            el('td', { class: 'num', text: j.attempt }),
            el('td', { class: 'reason', text: REASONS[j.reason] || j.reason || '–' }),
            el('td', { class: 'dead-error', text: j.error === null || j.error === undefined ? '–' : j.error }),
            el('td', { class: 'num', text: j.len }),
            payloadCell(j),
            el('td', {},
              el('button', { type: 'button', class: 'requeue', text: 'Requeue',
                onclick: () => act('requeue ' + j.id, () => apiJson('POST', qpath(q, '/dead/requeue?id=' + j.id))) }), ' ',
              el('button', { type: 'button', class: 'danger delete', text: 'Delete',
                onclick: () => act('delete ' + j.id, () => apiJson('POST', qpath(q, '/dead/purge?id=' + j.id))) })));
        });
        deadBody.replaceChildren(...rows);
        if (pages[3].more) deadBody.append(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'and more…' })));
        if (!rows.length) deadBody.append(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'No dead letters.' })));
      },
    };
  }

  function timersPage() {
    const tbody = el('tbody');
    const nav = el('p', { class: 'note' });
    let after = 0;
    const queue = el('input', { name: 'queue', placeholder: 'queue', required: true });
    const payload = el('input', { name: 'payload', placeholder: 'payload' });
    const kind = el('select', { name: 'kind' }, el('option', { value: 'every', text: 'every (s)' }),
      el('option', { value: 'after', text: 'after (s)' }), el('option', { value: 'cron', text: 'cron' }),
      el('option', { value: 'at', text: 'at (RFC 3339)' }));
    const when = el('input', { name: 'when', placeholder: '5', required: true });
    const count = el('input', { name: 'count', type: 'number', min: 1, placeholder: 'forever' });
    const form = el('form', { class: 'inline', id: 'create-timer' }, el('label', {}, 'Queue', queue),
      el('label', {}, 'Payload', payload), el('label', {}, 'Schedule', kind), el('label', {}, 'Value', when),
      el('label', {}, 'count', count), el('button', { type: 'submit', text: 'Create timer' }));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = { queue: queue.value, payload: payload.value };
      const k = kind.value;
      t[k] = k === 'every' || k === 'after' ? Number(when.value) : when.value;
      if (count.value !== '' && (k === 'every' || k === 'cron')) t.count = Number(count.value);
      act('create timer', () => apiJson('POST', '/timers', t)).then((r) => { if (r) form.reset(); });
    });
    const th = (t, num) => el('th', { class: num ? 'num' : null, text: t });
    main.replaceChildren(el('h1', { text: 'Timers' }), form,
      el('table', { id: 'timers' }, el('thead', {}, el('tr', {}, th('Id', 1), th('State'), th('Schedule'),
        th('Queue'), th('Next fire'), th('Fires', 1), th('Skips', 1), th('Last error'), th(''))), tbody), nav);
    return {
      async refresh() {
        const res = (await apiJson('GET', '/timers?limit=100&after=' + after)).data;
        const rows = res.timers.map((t) => {
          let sched = t.kind;
          if (t.kind === 'every') sched = 'every ' + t.every + ' s';
          else if (t.kind === 'cron') sched = 'cron ' + t.cron;
          if (t.count) sched += ', ' + t.count + ' times';
          if (t.jitter) sched += ', jitter ' + t.jitter + ' s';
          return el('tr', { 'data-timer': t.id },
            el('td', { class: 'num', text: t.id }),
            el('td', { 'data-field': 'state', class: t.state === 'failed' ? 'error' : null, text: t.state + (t.retrying ? ' (retrying)' : '') }),
            el('td', { text: sched }), el('td', {}, el('a', { href: '#/queue/' + encodeURIComponent(t.queue), text: t.queue })),
            el('td', { text: t.next_fire ? relTime(t.next_fire) : 'finished ' + relTime(t.finished) }),
            el('td', { class: 'num', 'data-field': 'fires', text: t.fires }),
            el('td', { class: 'num', text: t.skips }),
            el('td', { class: 'error', text: t.last_error || '' }),
            el('td', {}, t.state === 'scheduled' ? el('button', { type: 'button', class: 'danger cancel', text: 'Cancel',
              onclick: () => act('cancel timer ' + t.id, () => apiJson('DELETE', '/timers/' + t.id)) }) : ''));
        });
        tbody.replaceChildren(...rows);
        if (!rows.length) tbody.append(el('tr', {}, el('td', { colspan: 9, class: 'muted', text: 'No timers.' })));
        nav.replaceChildren(
          res.next_after ? el('button', { type: 'button', text: 'Next page', onclick: () => { after = res.next_after; refreshNow(); } }) : '',
          after ? el('button', { type: 'button', text: 'First page', onclick: () => { after = 0; refreshNow(); } }) : '');
      },
    };
  }

  const ENDPOINTS = [
    ['GET', '/', 'the daemon\'s index: every route with a line each (the httpbin probes too)'],
    ['GET', '/health', 'liveness: status, connections, uptime, version (always public)'],
    ['GET', '/metrics', 'Prometheus text (behind [auth] unless [metrics] public = on)'],
    ['GET', '/get', 'httpbin: echo of the request'],
    ['POST', '/post', 'httpbin: echo with the body (also /put, /patch, /delete)'],
    ['ANY', '/anything[/...]', 'httpbin: echo of any method'],
    ['ANY', '/delay/{s}', 'answer after s seconds (at most [probe] max_delay)'],
    ['ANY', '/status/{code}', 'answer with that status'],
    ['GET', '/bytes/{n}', 'n random bytes'],
    ['GET', '/stream/{n}', 'n JSON lines, chunked'],
    ['GET', '/drip?duration=S&numbytes=N', 'N bytes spread over S seconds'],
    ['*', '/queues[/{q}[/...]]', 'queues (docs/QUEUES.md)'],
    ['*', '/timers[/{id}]', 'timers (docs/TIMERS.md)'],
    ['GET', '/console', 'this console (docs/CONSOLE.md)'],
  ];
  function endpointsPage() {
    const th = (t) => el('th', { text: t });
    main.replaceChildren(el('h1', { text: 'Endpoints' }),
      el('table', { id: 'endpoints' }, el('thead', {}, el('tr', {}, th('Method'), th('Path'), th('What'))),
        el('tbody', {}, ENDPOINTS.map(([m, p, w]) => el('tr', {}, el('td', {}, el('code', { text: m })),
          el('td', {}, m === 'GET' && !p.includes('{') ? el('a', { href: p.split('?')[0], text: p }) : el('code', { text: p })),
          el('td', { text: w }))))));
    return null;
  }

  /* ---- routing and polling ---- */
  async function tick(g) {
    if (!page || g !== gen || !login.hidden) return;
    const live = document.getElementById('live');
    try {
      await page.refresh();
      if (g === gen) live.textContent = 'updated ' + new Date().toLocaleTimeString();
    } catch (e) {
      if (g === gen && e.status !== 401) live.textContent = 'error: ' + e.message;
    }
    if (g === gen && login.hidden) pollTimer = setTimeout(() => tick(g), POLL_MS);
  }
  function refreshNow() {
    clearTimeout(pollTimer);
    tick(gen);
  }
  function route() {
    gen++;
    clearTimeout(pollTimer);
    forget.hidden = !sessionStorage.getItem(TOKEN_KEY);
    login.hidden = true;
    main.hidden = false;
    const hash = location.hash.replace(/^#/, '') || '/';
    const parts = hash.split('/');
    let which = 'overview';
    if (parts[1] === 'queues') { which = 'queues'; page = queuesPage(); }
    else if (parts[1] === 'queue' && parts[2]) {
      which = 'queues';
      let q;
      try { q = decodeURIComponent(parts.slice(2).join('/')); } catch (e) { q = parts.slice(2).join('/'); }
      page = queuePage(q);
    } else if (parts[1] === 'timers') { which = 'timers'; page = timersPage(); }
    else if (parts[1] === 'endpoints') { which = 'endpoints'; page = endpointsPage(); }
    else page = overviewPage();
    for (const a of document.querySelectorAll('header nav a'))
      a.classList.toggle('active', a.dataset.nav === which);
    tick(gen);
  }
  window.addEventListener('hashchange', route);
  route();
})();
