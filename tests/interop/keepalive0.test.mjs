// Keepalive 0 turns keep-alive off [MQTT-3.1.2-10]: v3.1.1 and v5 clients
// must connect with the default configuration. FAILS on the current code
// for v3.1.1 (default max_keepalive 65535 refuses 0); committed with the
// known-gap tests, to merge with the max_keepalive default fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';

const URL = `mqtt://127.0.0.1:${process.env.MQTTD_PORT}`;

for (const v of [4, 5]) {
  test(`v${v}: connect with keepalive 0`, async () => {
    const c = await mqtt.connectAsync(URL, {
      protocolVersion: v, keepalive: 0, reconnectPeriod: 0, connectTimeout: 10000,
      clientId: `js-ka0-${v}-${process.pid}`,
    });
    if (v === 5) assert.equal(c.options.properties?.serverKeepAlive, undefined);
    await c.endAsync();
  });
}
