// BullMQ's side of bench/redis.sh: C producers loop Queue.add of a 100-byte
// payload while one Worker (concurrency C, empty processor) completes them,
// for D seconds, on the Redis at 127.0.0.1:PORT. Prints one JSON line:
// {"cycles": completed jobs, "seconds": D, "added": jobs added}.
//   node bullmq_cycle.mjs PORT CONNS SECONDS [BULK]
// BULK > 0: producers use addBulk of BULK jobs instead (the batched figure).
import { Queue, Worker } from "bullmq";

const [port, conns, secs, bulk] = process.argv.slice(2).map(Number);
const connection = { host: "127.0.0.1", port };
const name = "bench-" + process.pid;
const payload = { p: "x".repeat(93) }; // {"p":"xxx..."}: 100 bytes of JSON
const opts = { removeOnComplete: true, removeOnFail: true };
const queue = new Queue(name, { connection });
let completed = 0, added = 0, stop = false;
const worker = new Worker(name, async () => {}, { connection, concurrency: conns });
worker.on("completed", () => { completed++; });
await worker.waitUntilReady();
await queue.waitUntilReady();

async function producer() {
  while (!stop) {
    if (bulk > 0) {
      await queue.addBulk(Array.from({ length: bulk }, () => ({ name: "j", data: payload, opts })));
      added += bulk;
    } else {
      await queue.add("j", payload, opts);
      added++;
    }
    // Keep the backlog bounded, as awaitd's cycles do: wait while far ahead.
    while (!stop && added - completed > conns * Math.max(1, bulk)) await new Promise((r) => setTimeout(r, 1));
  }
}

const t0 = process.hrtime.bigint();
const producers = Array.from({ length: conns }, producer);
await new Promise((r) => setTimeout(r, secs * 1000));
const done = completed;
const t1 = process.hrtime.bigint();
stop = true;
await Promise.all(producers);
await worker.close(true);
await queue.obliterate({ force: true }).catch(() => {});
await queue.close();
console.log(JSON.stringify({ cycles: done, seconds: Number(t1 - t0) / 1e9, added }));
process.exit(0);
