// Interoperability: MQTT.js (the mqtt npm package) against mqttd with the
// default configuration, started by run.py on MQTTD_PORT. Everyday flows in
// v3.1.1 and v5; waits are events (promises), each bounded by a timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';

const URL = `mqtt://127.0.0.1:${process.env.MQTTD_PORT}`;
const T = 10000;
let seq = 0;

// The message handler is attached before CONNECT is sent: a resumed
// session's queued messages follow the CONNACK at once.
async function client(version, opts = {}) {
  const c = mqtt.connect(URL, {
    protocolVersion: version, reconnectPeriod: 0, connectTimeout: T,
    clientId: opts.clientId ?? `js-${process.pid}-${++seq}`, ...opts,
  });
  c.inbox = [];
  c.waiters = [];
  c.on('message', (topic, payload, packet) => {
    const w = c.waiters.shift();
    if (w) w({ topic, payload, packet }); else c.inbox.push({ topic, payload, packet });
  });
  await new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
  return c;
}

function next(c) {
  if (c.inbox.length) return Promise.resolve(c.inbox.shift());
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no message within 10 s')), T);
    c.waiters.push((m) => { clearTimeout(t); resolve(m); });
  });
}

// nothing queued: a QoS 1 round trip to an unused topic completes first
async function nothingMore(c) {
  await c.publishAsync(`interop/js/nothing/${++seq}`, '', { qos: 1 });
  assert.equal(c.inbox.length, 0, 'unexpected message');
}

for (const v of [4, 5]) {
  test(`v${v}: connect with keepalive 60`, async () => {
    const c = await client(v, { keepalive: 60 });
    await c.endAsync();
  });

  test(`v${v}: QoS 0/1/2 both ways`, async () => {
    const s = await client(v);
    for (const sq of [0, 1, 2]) await s.subscribeAsync(`interop/js/${v}/q/${sq}/+`, { qos: sq });
    const p = await client(v);
    for (const sq of [0, 1, 2]) {
      for (const pq of [0, 1, 2]) {
        const t = `interop/js/${v}/q/${sq}/${pq}`;
        await p.publishAsync(t, 'm', { qos: pq });
        const m = await next(s);
        assert.equal(m.topic, t);
        assert.equal(m.packet.qos, Math.min(sq, pq));
      }
    }
    await s.endAsync();
    await p.endAsync();
  });

  test(`v${v}: retained set, receive, clear`, async () => {
    const t = `interop/js/${v}/retained`;
    const p = await client(v);
    await p.publishAsync(t, 'kept', { qos: 1, retain: true });
    const s = await client(v);
    await s.subscribeAsync(t, { qos: 1 });
    const m = await next(s);
    assert.equal(m.payload.toString(), 'kept');
    assert.equal(m.packet.retain, true);
    await p.publishAsync(t, '', { qos: 1, retain: true });
    const s2 = await client(v);
    await s2.subscribeAsync(t, { qos: 1 });
    await nothingMore(s2);
    for (const c of [p, s, s2]) await c.endAsync();
  });

  test(`v${v}: will on abnormal disconnect`, async () => {
    const t = `interop/js/${v}/will`;
    const s = await client(v);
    await s.subscribeAsync(t, { qos: 1 });
    const w = await client(v, { will: { topic: t, payload: Buffer.from('gone'), qos: 1, retain: false } });
    w.stream.destroy(); // no DISCONNECT
    const m = await next(s);
    assert.equal(m.payload.toString(), 'gone');
    await s.endAsync();
  });

  test(`v${v}: persistent session receives queued QoS 1`, async () => {
    const t = `interop/js/${v}/ps`;
    const id = `js-ps-${v}-${process.pid}`;
    const props = v === 5 ? { properties: { sessionExpiryInterval: 300 } } : {};
    const c = await client(v, { clientId: id, clean: false, ...props });
    await c.subscribeAsync(t, { qos: 1 });
    await c.endAsync();
    const p = await client(v);
    for (let i = 0; i < 3; i++) await p.publishAsync(t, `q${i}`, { qos: 1 });
    await p.endAsync();
    const c2 = await client(v, { clientId: id, clean: false, ...props });
    const got = [];
    for (let i = 0; i < 3; i++) got.push((await next(c2)).payload.toString());
    assert.deepEqual(got, ['q0', 'q1', 'q2']);
    await c2.endAsync();
  });
}

test('v5: properties pass through (user, expiry, response topic, correlation, content type)', async () => {
  const s = await client(5);
  await s.subscribeAsync('interop/js/props', { qos: 1 });
  const p = await client(5);
  await p.publishAsync('interop/js/props', '{}', {
    qos: 1,
    properties: {
      userProperties: { k1: 'v1', k2: 'v2' }, messageExpiryInterval: 300,
      responseTopic: 'interop/js/reply', correlationData: Buffer.from([0, 1, 2]),
      contentType: 'application/json',
    },
  });
  const pr = (await next(s)).packet.properties;
  assert.equal(pr.userProperties.k1, 'v1');
  assert.equal(pr.userProperties.k2, 'v2');
  assert.ok(pr.messageExpiryInterval <= 300 && pr.messageExpiryInterval > 290);
  assert.equal(pr.responseTopic, 'interop/js/reply');
  assert.deepEqual([...pr.correlationData], [0, 1, 2]);
  assert.equal(pr.contentType, 'application/json');
  await s.endAsync();
  await p.endAsync();
});

test('v5: request/response with No Local', async () => {
  const a = await client(5);
  const b = await client(5);
  for (const c of [a, b]) await c.subscribeAsync('interop/js/rr', { qos: 2, nl: true });
  await a.publishAsync('interop/js/rr', 'request', {
    qos: 1, properties: { responseTopic: 'interop/js/rr', correlationData: Buffer.from('334') },
  });
  const req = await next(b);
  assert.equal(req.payload.toString(), 'request');
  assert.equal(req.packet.properties.responseTopic, 'interop/js/rr');
  assert.equal(req.packet.properties.correlationData.toString(), '334');
  await b.publishAsync(req.packet.properties.responseTopic, 'response', {
    qos: 1, properties: { correlationData: req.packet.properties.correlationData },
  });
  const resp = await next(a);
  assert.equal(resp.payload.toString(), 'response');
  assert.equal(resp.packet.properties.correlationData.toString(), '334');
  await nothingMore(a);
  await nothingMore(b);
  await a.endAsync();
  await b.endAsync();
});

test('v5: topic alias from the client, subscription identifiers', async () => {
  const s = await client(5);
  await s.subscribeAsync('interop/js/alias/+', { qos: 1, properties: { subscriptionIdentifier: 42 } });
  await s.subscribeAsync('interop/js/alias/#', { qos: 1, properties: { subscriptionIdentifier: 4242 } });
  const p = await client(5);
  await p.publishAsync('interop/js/alias/x', 'first', { qos: 1, properties: { topicAlias: 1 } });
  await p.publishAsync('', 'second', { qos: 1, properties: { topicAlias: 1 } });
  const m1 = await next(s);
  const m2 = await next(s);
  assert.equal(m1.payload.toString(), 'first');
  assert.equal(m2.topic, 'interop/js/alias/x');
  assert.equal(m2.payload.toString(), 'second');
  assert.deepEqual([...m2.packet.properties.subscriptionIdentifier].sort((x, y) => x - y), [42, 4242]);
  await s.endAsync();
  await p.endAsync();
});
