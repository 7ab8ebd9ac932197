// Drives `faultline serve` with the real Node client (toxiproxy-node-client, pinned by
// tests/install-toxiproxy-clients.sh) exactly as a Node test suite would, and checks that its
// toxics act on real traffic. Run by tests/integration/api.rs with API (http://HOST:PORT) and
// UPSTREAM (an echo server's HOST:PORT); prints "ok" and exits 0, or throws.
"use strict";
const assert = require("node:assert/strict");
const net = require("node:net");
const { Toxiproxy } = require("toxiproxy-node-client");

const api = process.env.API;
const upstream = process.env.UPSTREAM;

function hostPort(listen) {
  const i = listen.lastIndexOf(":");
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(listen.slice(i + 1)) };
}

// Sends `payload` through the proxy to the echo server; resolves with what came back, how the
// connection ended and how long the first byte took.
function roundTrip(listen, payload, { halfClose = true, limitMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const chunks = [];
    let firstByteMs = null;
    const socket = net.connect(hostPort(listen), () => {
      socket.write(payload);
      if (halfClose) socket.end();
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end within ${limitMs} ms (got ${Buffer.concat(chunks).length} bytes)`));
    }, limitMs);
    socket.on("data", (d) => {
      if (firstByteMs === null) firstByteMs = Number(process.hrtime.bigint() - started) / 1e6;
      chunks.push(d);
    });
    socket.on("error", (e) => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), end: e.code || "error", firstByteMs });
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), end: "close", firstByteMs });
    });
  });
}

async function rejectsWith(promise, status) {
  await assert.rejects(promise, (e) => {
    assert.match(e.message, new RegExp(`status code ${status}`));
    return true;
  });
}

async function main() {
  const toxiproxy = new Toxiproxy(api);
  assert.match(await toxiproxy.getVersion(), /"version"/);

  const proxy = await toxiproxy.createProxy({ name: "node_echo", listen: "localhost:0", upstream });
  assert.equal(proxy.enabled, true);
  assert.match(proxy.listen, /^127\.0\.0\.1:\d+$/);
  assert.notEqual(hostPort(proxy.listen).port, 0, "localhost:0 reports the port it picked");
  await rejectsWith(toxiproxy.createProxy({ name: "node_echo", listen: "localhost:0", upstream }), 409);
  await rejectsWith(toxiproxy.get("nope"), 404);
  const all = await toxiproxy.getAll();
  assert.deepEqual(Object.keys(all), ["node_echo"]);
  assert.equal((await toxiproxy.get("node_echo")).listen, proxy.listen);

  const clean = await roundTrip(proxy.listen, Buffer.from("hello"));
  assert.equal(clean.data.toString(), "hello");
  const baseline = clean.firstByteMs;

  // latency: measured on real traffic. 2 s is long enough that a round trip under it proves
  // the toxic gone even on a busy machine; latency numbers themselves are the benches' job.
  const LATENCY_MS = 2000;
  const latency = await proxy.addToxic({
    name: "slow", type: "latency", stream: "downstream", toxicity: 1,
    attributes: { latency: LATENCY_MS, jitter: 0 },
  });
  assert.equal(latency.name, "slow");
  assert.deepEqual(latency.attributes, { latency: LATENCY_MS, jitter: 0 });
  const slow = await roundTrip(proxy.listen, Buffer.from("ping"));
  assert.equal(slow.data.toString(), "ping");
  assert.ok(slow.firstByteMs >= LATENCY_MS, `latency ${LATENCY_MS} ms took ${slow.firstByteMs} ms`);
  const fetched = await proxy.getToxic("slow");
  assert.equal(fetched.type, "latency");
  const updated = await fetched.update({ attributes: { latency: 50 }, toxicity: 1 });
  assert.equal(updated.attributes.latency, 50);
  await updated.remove();
  await rejectsWith(proxy.getToxic("slow"), 404);
  const fast = await roundTrip(proxy.listen, Buffer.from("ping"));
  assert.ok(fast.firstByteMs < LATENCY_MS, `removed latency still there: ${fast.firstByteMs} ms (baseline ${baseline})`);

  // limit_data: exactly N bytes, then the connection closes.
  await proxy.addToxic({ name: "limit", type: "limit_data", stream: "downstream", toxicity: 1, attributes: { bytes: 1000 } });
  const limited = await roundTrip(proxy.listen, Buffer.alloc(5000, 7), { halfClose: false });
  assert.equal(limited.data.length, 1000, "limit_data cuts at exactly 1000 bytes");
  assert.equal(limited.end, "close");
  await rejectsWith(proxy.addToxic({ name: "limit", type: "limit_data", stream: "downstream", toxicity: 1, attributes: { bytes: 1 } }), 409);
  await rejectsWith(proxy.addToxic({ name: "x", type: "no_such_toxic", stream: "downstream", toxicity: 1, attributes: {} }), 400);

  // reset: toxics gone, proxy kept.
  await toxiproxy.reset();
  assert.deepEqual((await toxiproxy.get("node_echo")).toJson().name, "node_echo");
  const afterReset = await roundTrip(proxy.listen, Buffer.alloc(5000, 7));
  assert.equal(afterReset.data.length, 5000, "reset removed limit_data");

  // reset_peer: the client sees a reset.
  await proxy.addToxic({ name: "rst", type: "reset_peer", stream: "upstream", toxicity: 1, attributes: { timeout: 0 } });
  const reset = await roundTrip(proxy.listen, Buffer.from("boom"), { halfClose: false });
  assert.equal(reset.end, "ECONNRESET");
  assert.equal(reset.data.length, 0);
  await toxiproxy.reset();

  // Disabling closes the listener; enabling brings it back on the same address.
  const disabled = await proxy.update({ enabled: false, listen: proxy.listen, upstream });
  assert.equal(disabled.enabled, false);
  const refused = await roundTrip(proxy.listen, Buffer.from("x"));
  assert.equal(refused.end, "ECONNREFUSED");
  const enabled = await proxy.update({ enabled: true, listen: proxy.listen, upstream });
  assert.equal(enabled.listen, proxy.listen);
  assert.equal((await roundTrip(proxy.listen, Buffer.from("back"))).data.toString(), "back");

  // populate: creates, keeps what is the same.
  const populated = await toxiproxy.populate([
    { name: "node_echo", listen: proxy.listen, upstream },
    { name: "node_two", listen: "127.0.0.1:0", upstream },
  ]);
  assert.deepEqual(Object.keys(populated).sort(), ["node_echo", "node_two"]);
  assert.equal(populated.node_echo.listen, proxy.listen, "an unchanged proxy is kept");
  await populated.node_two.remove();
  await proxy.remove();
  await rejectsWith(toxiproxy.get("node_echo"), 404);
  assert.deepEqual(Object.keys(await toxiproxy.getAll()), []);
  console.log("ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
