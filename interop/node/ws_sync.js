// A client of offsync's WebSocket form written from docs/protocol.md
// ("WebSocket") alone, with the `ws` package: it authenticates with an auth
// frame (as a browser must), pulls a page and walks the rest by page token,
// subscribes, pushes one op, hears of it through a notice, and fetches it.
//
// usage: node interop/node/ws_sync.js WS_URL TOKEN KIND
// Prints one JSON line with what it saw; exits non-zero on any failure.
'use strict';

const WebSocket = require('ws');

const [url, token, kind] = process.argv.slice(2);
if (!url || !token || !kind) {
  console.error('usage: node ws_sync.js WS_URL TOKEN KIND');
  process.exit(2);
}

const sock = new WebSocket(url, 'offsync.v1');
let nextId = 0;
const waiting = new Map(); // request id → resolve
const frames = [];         // frames with no request: hello, notices
let wake = null;

sock.on('message', (data, isBinary) => {
  if (isBinary) throw new Error('the server sent a binary message');
  const f = JSON.parse(data.toString());
  if (typeof f.id === 'number' && f.t !== 'notice' && waiting.has(f.id)) {
    const resolve = waiting.get(f.id);
    waiting.delete(f.id);
    resolve(f);
    return;
  }
  frames.push(f);
  if (wake) { const w = wake; wake = null; w(); }
});
sock.on('close', (code, reason) => {
  for (const [, resolve] of waiting) resolve({ t: 'closed', code, reason: reason.toString() });
});

function request(frame) {
  const id = ++nextId;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    sock.send(JSON.stringify({ ...frame, id }));
  });
}

async function next(match) {
  for (;;) {
    const i = frames.findIndex(match);
    if (i >= 0) return frames.splice(i, 1)[0];
    await new Promise((r) => { wake = r; });
  }
}

function expect(f, t) {
  if (f.t !== t) throw new Error(`want a ${t} frame, got ${JSON.stringify(f)}`);
  return f;
}

async function main() {
  await new Promise((resolve, reject) => { sock.once('open', resolve); sock.once('error', reject); });
  if (sock.protocol !== 'offsync.v1') throw new Error('subprotocol ' + sock.protocol);
  const hello = await next((f) => f.t === 'hello');
  if (hello.protocol !== 1 || !hello.auth) throw new Error('unexpected hello ' + JSON.stringify(hello));
  expect(await request({ t: 'auth', token }), 'ok');

  let pulled = 0;
  let page = expect(await request({ t: 'pull', kind, limit: 2 }), 'page');
  pulled += page.items.length;
  while (page.nextPageToken) {
    page = expect(await request({ t: 'pull', kind, limit: 2, pageToken: page.nextPageToken }), 'page');
    pulled += page.items.length;
  }
  const sub = expect(await request({ t: 'sub', kinds: [kind] }), 'ok');

  const results = expect(await request({ t: 'push', ops: [
    { opId: 'node-op-1', kind, id: 'from-node', type: 'upsert', payload: { title: 'written by node', n: 7 } },
  ] }), 'results');
  const r = results.results[0];
  if (r.opId !== 'node-op-1' || r.status !== 200 || r.record.id !== 'from-node') {
    throw new Error('push answered ' + JSON.stringify(results));
  }
  const notice = await next((f) => f.t === 'notice' && f.sub === sub.id && f.id === 'from-node');
  if (notice.kind !== kind || notice.updated_at !== r.record.updated_at) {
    throw new Error('notice ' + JSON.stringify(notice) + ' does not match ' + JSON.stringify(r.record));
  }
  const got = expect(await request({ t: 'get', kind, rid: 'from-node' }), 'record');
  const bad = expect(await request({ t: 'pull', kind: 'no_such_kind' }), 'error');
  expect(await request({ t: 'ping' }), 'pong');
  sock.close(1000);
  console.log(JSON.stringify({
    pulled,
    pushed: r.status,
    notice: notice.id,
    title: got.record.title,
    unknownKind: `${bad.status} ${bad.error}`,
  }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
