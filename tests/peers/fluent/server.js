// A real Fluent forward-protocol server for logdriver's tests and benchmarks:
// the fluent org's FluentServer (@fluent-org/logger), unmodified.
// Settings come from the environment; stdout gets one JSON line per event:
//   {"listening": <port or path>}                     once, when ready
//   {"tag": ..., "time": [sec, nsec] | sec, "record": {...}}   per entry
//   {"count": n, "t": unix seconds}  instead of entries, when PEER_COUNT_ONLY=1
//                 (every 10 ms while the count changes: benchmarks time the arrival)
"use strict";
const fs = require("fs");
const { FluentServer } = require("@fluent-org/logger");

const env = process.env;
const options = { listenOptions: env.PEER_UNIX ? { path: env.PEER_UNIX } : { host: "127.0.0.1", port: Number(env.PEER_PORT || 0) } };
if (env.PEER_SHARED_KEY) {
  options.security = {
    serverHostname: env.PEER_HOSTNAME || "fluent-peer",
    sharedKey: env.PEER_SHARED_KEY,
    authorize: Boolean(env.PEER_USER),
    userDict: env.PEER_USER ? { [env.PEER_USER]: env.PEER_PASSWORD || "" } : {},
  };
}
if (env.PEER_TLS_CERT) {
  options.tlsOptions = { cert: fs.readFileSync(env.PEER_TLS_CERT), key: fs.readFileSync(env.PEER_TLS_KEY) };
}

const countOnly = env.PEER_COUNT_ONLY === "1";
let count = 0;
const out = [];
function flush() {
  if (out.length) process.stdout.write(out.splice(0).join(""));
}
function plain(value) {
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const copy = {};
    for (const [k, v] of Object.entries(value)) copy[k] = plain(v);
    return copy;
  }
  return value;
}

const server = new FluentServer(options);
server.on("entry", (tag, time, record) => {
  count += 1;
  if (countOnly) return;
  const when = typeof time === "number" ? time : [time.epoch, time.nano];
  out.push(JSON.stringify({ tag, time: when, record: plain(record) }) + "\n");
  if (out.length >= 1000) flush();
});
let reported = -1;
setInterval(() => {
  flush();
  if (countOnly && count !== reported) {
    reported = count;
    process.stdout.write(JSON.stringify({ count, t: Date.now() / 1000 }) + "\n");
  }
}, countOnly ? 10 : 20);
server.listen().then(() => {
  process.stdout.write(JSON.stringify({ listening: env.PEER_UNIX || server.port }) + "\n");
});
process.on("SIGTERM", () => { flush(); process.exit(0); });
