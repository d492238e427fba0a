// A client of offsync's gRPC service written from sync.proto alone, with
// @grpc/grpc-js and @grpc/proto-loader: it reads the capabilities,
// subscribes, pushes one op and hears of it through the stream, then pulls a
// page and walks the rest by page token (the pushed record among them), and
// streams the same walk over PullPages when the server lists stream-pull.
// Run it against `offsync serve` (grpc on the HTTP port plus one) or the
// server half in the Go test.
//
// usage: node interop/node/grpc_sync.js HOST:PORT TOKEN KIND
// Prints one JSON line with what it saw; exits non-zero on any failure.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const [addr, token, kind] = process.argv.slice(2);
if (!addr || !token || !kind) {
  console.error('usage: node grpc_sync.js HOST:PORT TOKEN KIND');
  process.exit(2);
}

const protoDir = path.join(__dirname, '..', '..', 'drivers', 'transport', 'grpc', 'proto');
const def = protoLoader.loadSync('offsync/sync/v1/sync.proto', {
  includeDirs: [protoDir],
  keepCase: true,   // field names exactly as in sync.proto
  longs: String,    // int64 microseconds as decimal strings
  enums: String,
  defaults: true,
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(def).offsync.sync.v1;
const client = new v1.Sync(addr, grpc.credentials.createInsecure());

function md() {
  const m = new grpc.Metadata();
  m.set('authorization', 'Bearer ' + token);
  return m;
}

function call(method, req, withToken = true) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10000);
    const cb = (err, resp) => (err ? reject(err) : resolve(resp));
    if (withToken) client[method](req, md(), { deadline }, cb);
    else client[method](req, { deadline }, cb);
  });
}

async function main() {
  const caps = await call('Capabilities', {}, false);
  if (caps.status !== 'ok' || !caps.capabilities.includes('batch')) {
    throw new Error('unexpected capabilities ' + JSON.stringify(caps));
  }

  // Subscribe; the stream is in force once its header arrives.
  const stream = client.Subscribe({ kinds: [kind] }, md());
  const subscribed = new Promise((resolve, reject) => {
    stream.on('metadata', (m) => (m.get('offsync-subscribed').length ? resolve() : reject(new Error('no offsync-subscribed header'))));
    stream.on('error', reject);
  });
  const noticed = new Promise((resolve) => {
    stream.on('data', (n) => { if (n.id === 'from-node' || n.id === '') resolve(n); });
  });
  await subscribed;

  // Push one op, then hear of it.
  const opId = 'node-op-' + Date.now();
  const pushed = await call('Push', {
    ops: [{
      op_id: opId, kind, id: 'from-node', type: 'OP_TYPE_UPSERT', force: true,
      payload: Buffer.from(JSON.stringify({ title: 'written by node', n: 42 })),
    }],
  });
  const result = pushed.results[0];
  if (result.status !== 200 || !result.record || result.record.updated_at === '0') {
    throw new Error('push answered ' + JSON.stringify(result));
  }
  const notice = await noticed;
  stream.cancel();

  // Pull a page of two, then walk the rest by page token.
  const first = await call('Pull', { kind, limit: 2 });
  const seen = first.records.map((r) => r.id);
  let token = first.next_page_token;
  while (token) {
    const page = await call('Pull', { kind, page_token: token, limit: 2 });
    seen.push(...page.records.map((r) => r.id));
    token = page.next_page_token;
  }
  if (!seen.includes('from-node')) {
    throw new Error('the pushed record is not in the pull: ' + JSON.stringify(seen));
  }
  const data = JSON.parse(first.records[0].data.toString('utf8'));

  // The same walk over one PullPages stream: a page per message, the last
  // without a next_page_token, then the stream ends OK.
  let streamed = null;
  let streamPages = 0;
  if (caps.capabilities.includes('stream-pull')) {
    streamed = [];
    await new Promise((resolve, reject) => {
      const pages = client.PullPages({ kind, limit: 2 }, md(), { deadline: new Date(Date.now() + 10000) });
      let last = false;
      pages.on('data', (page) => {
        if (last) reject(new Error('a page after the last'));
        streamPages++;
        streamed.push(...page.records.map((r) => r.id));
        last = !page.next_page_token || page.records.length === 0;
      });
      pages.on('error', reject);
      pages.on('end', () => (last ? resolve() : reject(new Error('the stream ended before the last page'))));
    });
  }

  console.log(JSON.stringify({
    protocol: caps.protocol, maxBatch: caps.max_batch, firstPage: first.records.length, seen, data,
    pushStatus: result.status, updatedAt: result.record.updated_at, noticeUpdatedAt: notice.updated_at,
    streamed, streamPages,
  }));
}

main().then(() => { client.close(); process.exit(0); }, (err) => {
  console.error('grpc_sync.js:', err && err.stack ? err.stack : err);
  client.close();
  process.exit(1);
});
