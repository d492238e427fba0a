
(() => {
  'use strict';
  // The token lives in this tab's sessionStorage and travels only in the
  // Authorization header; the page never puts it in a URL.
  const KEY = 'offsync.ui.token';
  const MAX_CHANGES = 50;
  const base = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
  const $ = (id) => document.getElementById(id);

  let token = sessionStorage.getItem(KEY) || '';
  let stream = null; // the AbortController of the live stream
  let retry = 0;
  const changes = [];

  class AuthError extends Error {}

  function setStatus(text, cls) {
    const s = $('status');
    s.textContent = text;
    s.className = cls;
  }

  function showSignedIn(on) {
    $('signin').hidden = on;
    $('dash').hidden = !on;
    $('signout').hidden = !on;
  }

  function signOut(message) {
    if (stream) stream.abort();
    stream = null;
    token = '';
    sessionStorage.removeItem(KEY);
    showSignedIn(false);
    setStatus('signed out', 'wait');
    $('updated').textContent = '';
    $('signin-error').textContent = message || '';
  }

  async function api(path, signal) {
    const resp = await fetch(base + path, {
      headers: { Authorization: 'Bearer ' + token },
      cache: 'no-store',
      credentials: 'omit',
      signal,
    });
    if (resp.status === 401) throw new AuthError('The token was refused.');
    if (resp.status === 403) throw new AuthError('This token is not an administrator\'s (role: admin).');
    if (!resp.ok) throw new Error(path + ': HTTP ' + resp.status);
    return resp;
  }

  const num = (n) => (n === undefined || n === null || n < 0 ? '?' : String(n));
  const rate = (r) => (r === undefined ? '–' : r.toFixed(1) + '/s');

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function render(s) {
    $('updated').textContent = 'updated ' + new Date(s.at).toLocaleTimeString();
    const kinds = $('kinds');
    kinds.replaceChildren();
    for (const k of s.kinds || []) {
      const t = k.traffic || {};
      const tr = document.createElement('tr');
      tr.dataset.kind = k.kind;
      cell(tr, k.kind, 'kind');
      cell(tr, num(k.rows), 'rows');
      cell(tr, num(k.tombstones), 'tombstones');
      cell(tr, num(t.applied || 0), 'applied');
      cell(tr, num(t.conflict || 0), 'conflicts' + (t.conflict ? ' warn' : ''));
      cell(tr, num(t.rejected || 0), 'rejected' + (t.rejected ? ' warn' : ''));
      cell(tr, num(t.pulled || 0), 'pulled');
      kinds.appendChild(tr);
    }
    const transports = $('transports');
    transports.replaceChildren();
    const st = s.stats || {};
    const names = Object.keys(st.transports || {}).sort();
    for (const name of names) {
      const t = st.transports[name];
      const r = t.requests || {};
      const total = (r.push || 0) + (r.pull || 0) + (r.get || 0) + (r.subscribe || 0);
      const tr = document.createElement('tr');
      tr.dataset.transport = name;
      cell(tr, name, 'transport');
      cell(tr, num(t.active_subscribers || 0), 'subscribers');
      cell(tr, num(total), 'requests');
      cell(tr, num(r.push || 0), 'push');
      cell(tr, num(r.pull || 0), 'pull');
      cell(tr, num(t.notices_sent || 0), 'notices');
      cell(tr, num(r.failed || 0), 'failed' + (r.failed ? ' warn' : ''));
      transports.appendChild(tr);
    }
    $('subscribers').textContent = num(st.active_subscribers || 0);
    const rt = s.rates;
    $('rate-push').textContent = rt ? rate(rt.pushed_ops) : '–';
    $('rate-pull').textContent = rt ? rate(rt.pulled_rows) : '–';
    $('rate-requests').textContent = rt ? rate(rt.requests) : '–';
  }

  function addChange(c) {
    changes.unshift(c);
    changes.length = Math.min(changes.length, MAX_CHANGES);
    const list = $('changes');
    list.replaceChildren();
    for (const ch of changes) {
      const li = document.createElement('li');
      const when = ch.version ? ch.version + ' ' : '';
      const what = ch.id ? ch.kind + '/' + ch.id : ch.kind + ' (changed)';
      li.textContent = when + what + (ch.deleted ? ' deleted' : '');
      li.dataset.kind = ch.kind;
      if (ch.deleted) li.className = 'deleted';
      list.appendChild(li);
    }
  }

  // handle takes one block of the event stream (text/event-stream).
  function handle(block) {
    let event = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data += line.slice(5).trim();
    }
    if (!data) return;
    const v = JSON.parse(data);
    if (event === 'snapshot') render(v);
    else if (event === 'change') addChange(v);
  }

  // live reads the event stream with fetch(), so that the token goes in a
  // header (EventSource cannot send one), and reconnects when it ends.
  async function live() {
    const mine = new AbortController();
    stream = mine;
    try {
      const resp = await api('api/events', mine.signal);
      setStatus('live', 'ok');
      retry = 0;
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          handle(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch (e) {
      if (e instanceof AuthError) {
        signOut(e.message);
        return;
      }
      if (mine.signal.aborted) return;
    }
    if (stream !== mine) return;
    retry = Math.min(retry + 1, 5);
    setStatus('reconnecting…', 'err');
    setTimeout(() => { if (stream === mine) live(); }, 1000 * retry);
  }

  async function start() {
    showSignedIn(true);
    $('signin-error').textContent = '';
    setStatus('connecting…', 'wait');
    try {
      const resp = await api('api/snapshot');
      render(await resp.json());
    } catch (e) {
      if (e instanceof AuthError) {
        signOut(e.message);
        return;
      }
      setStatus('error: ' + e.message, 'err');
    }
    live();
  }

  $('signin').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('token');
    token = input.value.trim();
    input.value = '';
    if (!token) return;
    sessionStorage.setItem(KEY, token);
    start();
  });
  $('signout').addEventListener('click', () => signOut(''));

  if (token) start();
  else signOut('');
})();
