// A client of offsync's GraphQL form written from docs/protocol.md ("GraphQL")
// alone: plain HTTP POSTs (fetch) for health, pull, record and push, and the
// npm graphql-ws client for the changes subscription.
//
// usage: node interop/node/graphql_sync.mjs http://HOST:PORT/graphql TOKEN
//
// It reads health, subscribes to "todo" and waits for the ready event,
// pulls every page (limit 1, by page token) and expects the record "g1"
// another client wrote, creates, edits (with its base), conflicts (with a
// stale base), re-sends an op (idempotent), deletes, and hears of its own
// write through the subscription. Then it prints READY and waits for the
// notice of "g2", written by another client, and pulls after its cursor to
// fetch it. It prints OK and exits 0, or prints FAIL and exits 1.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node graphql_sync.mjs http://HOST:PORT/graphql TOKEN');
  process.exit(2);
}

function fail(msg) {
  console.log('FAIL ' + msg);
  process.exit(1);
}
setTimeout(() => fail('timed out'), 60000).unref();

async function post(query, variables) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: r.status, body: await r.json() };
}

async function gql(query, variables) {
  const { status, body } = await post(query, variables);
  if (body.errors) fail(`${status} ${JSON.stringify(body.errors)}`);
  return body.data;
}

const RECORD = 'kind id updatedAt deletedAt editedAt data';
const PULL = `query Pull($kind: String!, $after: Cursor, $pageToken: String, $limit: Int) {
  pull(kind: $kind, after: $after, pageToken: $pageToken, limit: $limit) {
    records { ${RECORD} } nextPageToken remaining } }`;
const PUSH = `mutation Push($ops: [OpInput!]!) {
  push(ops: $ops) { opId status error message record { ${RECORD} } current { ${RECORD} } } }`;

// 1. health
const { health } = await gql('{ health { status protocol capabilities maxBatch maxLimit } }');
if (health.status !== 'ok' || health.protocol !== 1 || !health.capabilities.includes('events')) {
  fail('health ' + JSON.stringify(health));
}

// 2. subscribe, wait for {ready: true}
const events = [];
let wake = () => {};
function nextEvent(pred) {
  return new Promise((resolve) => {
    const look = () => {
      const i = events.findIndex(pred);
      if (i >= 0) {
        resolve(events.splice(i, 1)[0]);
        return true;
      }
      return false;
    };
    if (look()) return;
    const prev = wake;
    wake = () => { prev(); if (look()) wake = prev; };
  });
}
const ws = createClient({
  url: url.replace(/^http/, 'ws'),
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  retryAttempts: 0,
});
const dispose = ws.subscribe(
  { query: 'subscription($kinds: [String!]!) { changes(kinds: $kinds) { ready gap kind updatedAt id } }',
    variables: { kinds: ['todo'] } },
  {
    next: (v) => {
      if (v.errors) fail('subscription ' + JSON.stringify(v.errors));
      events.push(v.data.changes);
      wake();
    },
    error: (e) => fail('subscription error ' + (e && e.message ? e.message : JSON.stringify(e))),
    complete: () => {},
  },
);
await nextEvent((e) => e.ready);

// 3. pull every page, one record a page
const seen = [];
let pageToken = null;
for (;;) {
  const { pull } = await gql(PULL, { kind: 'todo', pageToken, limit: 1 });
  seen.push(...pull.records);
  if (!pull.nextPageToken) break;
  pageToken = pull.nextPageToken;
}
const g1 = seen.find((r) => r.id === 'g1');
if (!g1 || g1.data.from !== 'go') fail('pull: g1 missing ' + JSON.stringify(seen));
if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(g1.updatedAt)) fail('updatedAt format ' + g1.updatedAt);

// 4. create, hear of it
const create = { opId: 'node-1', kind: 'todo', id: 'n1', type: 'UPSERT', payload: { title: 'from node', tags: ['a'] } };
let [r] = (await gql(PUSH, { ops: [create] })).push;
if (r.status !== 200 || r.record.data.title !== 'from node') fail('create ' + JSON.stringify(r));
const created = r.record;
const notice = await nextEvent((e) => e.id === 'n1');
if (notice.kind !== 'todo' || notice.updatedAt !== created.updatedAt) fail('notice ' + JSON.stringify(notice));

// 5. edit with the base; a stale base conflicts; a re-sent op is idempotent
const edit = { opId: 'node-2', kind: 'todo', id: 'n1', type: 'UPSERT', payload: { title: 'edited by node' },
  baseUpdatedAt: created.updatedAt };
[r] = (await gql(PUSH, { ops: [edit] })).push;
if (r.status !== 200) fail('edit ' + JSON.stringify(r));
const edited = r.record;
[r] = (await gql(PUSH, { ops: [{ ...edit, opId: 'node-3', payload: { title: 'stale' } }] })).push;
if (r.status !== 409 || r.error !== 'conflict' || r.current.data.title !== 'edited by node') fail('conflict ' + JSON.stringify(r));
[r] = (await gql(PUSH, { ops: [edit] })).push;
if (r.status !== 200 || r.record.updatedAt !== edited.updatedAt) fail('re-send ' + JSON.stringify(r));

// 6. delete with the base; record shows the tombstone
[r] = (await gql(PUSH, { ops: [{ opId: 'node-4', kind: 'todo', id: 'n1', type: 'DELETE', baseUpdatedAt: edited.updatedAt }] })).push;
if (r.status !== 200 || !r.record.deletedAt) fail('delete ' + JSON.stringify(r));
const { record } = await gql(`query($id: ID!) { record(kind: "todo", id: $id) { ${RECORD} } }`, { id: 'n1' });
if (!record || !record.deletedAt) fail('record ' + JSON.stringify(record));

// 7. an error carries extensions.code
const bad = await post('{ pull(kind: "todo", limit: 0) { records { id } } }');
if (!bad.body.errors || bad.body.errors[0].extensions.code !== 'BAD_USER_INPUT') fail('bad input ' + JSON.stringify(bad.body));

// 8. another client's write arrives by notice; pull after the cursor
const last = r.record;
console.log('READY');
const n2 = await nextEvent((e) => e.id === 'g2');
const { pull } = await gql(PULL, { kind: 'todo', after: { updatedAt: last.updatedAt, id: last.id }, limit: 10 });
const g2 = pull.records.find((x) => x.id === 'g2');
if (!g2 || g2.data.from !== 'go' || g2.updatedAt !== n2.updatedAt) fail('g2 ' + JSON.stringify(pull));

dispose();
await ws.dispose();
console.log('OK');
process.exit(0);
