// The BullMQ side of scripts/bench.sh: the same no-op workloads as
// examples/bench.rs, run with BullMQ against the same private redis-server.
// bench.sh copies this file next to a `npm ci` of ./package.json (pinned
// versions) in a temporary folder and runs it with `node` from there.
//
//   node bullmq.mjs version
//   node bullmq.mjs throughput --url URL --prefix P --jobs N --workers W [--concurrency 10] [--timeout 300]
//   node bullmq.mjs latency    --url URL --prefix P --samples N [--warmup 5] [--concurrency 10] [--timeout 10]
//   node bullmq.mjs worker     --url URL --prefix P [--concurrency 10]
//
// Every figure is one `name=value` line on stdout; notes go to stderr.
//
// - throughput: adds N no-op jobs with Queue.addBulk (1,000 per call) while
//   no worker runs, resets Redis' command statistics, then starts W worker
//   processes (`worker` mode, one Worker of concurrency C each) and polls
//   ZCARD of the completed and failed sets every 20 ms until all N have
//   ended. Throughput = N / (max finishedOn − min processedOn), read from
//   every job's hash afterwards (the jobs' own timestamps, so the polling
//   interval does not enter the figure). Also prints Redis commands per job
//   (INFO commandstats, including commands run inside Lua).
// - latency: one worker process (concurrency C) on an idle queue; N jobs
//   added one at a time, each after the previous finished
//   (Job.waitUntilFinished with QueueEvents), after --warmup unrecorded
//   ones. Prints p50/p99/max of processedOn − timestamp (add → start) and
//   finishedOn − timestamp (add → end), whole ms, and the driver's own
//   add call → finished round trip.
// - worker: one Worker that runs no-op jobs until SIGTERM/SIGINT; prints
//   `ready pid=PID` on stdout once connected (bench.sh's idle figures).

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { Job, Queue, QueueEvents, Worker } from 'bullmq';
import IORedis from 'ioredis';

const SELF = fileURLToPath(import.meta.url);
const QUEUE = 'bench';

function fail(msg) {
  process.stderr.write(`bullmq.mjs: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const [mode, ...rest] = argv;
  const args = { mode, concurrency: 10, warmup: 5, prefix: 'bmq' };
  for (let i = 0; i < rest.length; i += 2) {
    const name = rest[i];
    const value = rest[i + 1];
    if (!name.startsWith('--') || value === undefined) {
      fail(`bad argument \`${name}\``);
    }
    args[name.slice(2)] = value;
  }
  for (const n of ['jobs', 'workers', 'concurrency', 'samples', 'warmup', 'timeout']) {
    if (args[n] !== undefined) {
      const v = Number(args[n]);
      if (!Number.isInteger(v) || v < 0) fail(`--${n}: expected a number, got \`${args[n]}\``);
      args[n] = v;
    }
  }
  return args;
}

function connection(url) {
  if (!url) fail('--url is required');
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379) };
}

function versionOf(pkg) {
  const path = new URL(`./node_modules/${pkg}/package.json`, import.meta.url);
  return JSON.parse(readFileSync(path, 'utf8')).version;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Nearest-rank percentile of sorted numbers (the same as examples/bench.rs).
function percentile(sorted, p) {
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1];
}

// INFO commandstats as [{name, calls, usec}].
function parseCommandstats(text) {
  const rows = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):(.*)$/.exec(line);
    if (!m) continue;
    const fields = Object.fromEntries(m[2].split(',').map((kv) => kv.split('=')));
    rows.push({ name: m[1].replace('|', '_'), calls: Number(fields.calls), usec: Number(fields.usec) });
  }
  rows.sort((a, b) => b.calls - a.calls || a.name.localeCompare(b.name));
  return rows;
}

// Every worker process started, so a SIGTERM/SIGINT to this process (the
// bench script's deadline or clean-up) takes them down too.
const CHILDREN = [];
function onSignal(signal) {
  for (const c of CHILDREN) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  process.exit(signal === 'SIGINT' ? 130 : 143);
}

// Starts `count` worker processes; resolves once every one printed `ready`
// (or rejects after `secs`).
function startWorkers(args, count, secs) {
  if (!CHILDREN.length) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  const children = [];
  const ready = [];
  for (let i = 0; i < count; i++) {
    const child = spawn(
      process.execPath,
      [SELF, 'worker', '--url', args.url, '--prefix', args.prefix, '--concurrency', String(args.concurrency)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child);
    CHILDREN.push(child);
    ready.push(
      new Promise((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`worker ${i + 1} not ready within ${secs}s`)), secs * 1000);
        child.stdout.on('data', (d) => {
          out += d;
          if (out.includes('ready')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.on('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`worker ${i + 1} exited (${signal || code}) before it was ready`));
        });
      }),
    );
  }
  return { children, ready: Promise.all(ready) };
}

// SIGTERM every child, SIGKILL after 10 s; resolves when all have exited.
async function stopWorkers(children) {
  await Promise.all(
    children.map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
          child.on('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

async function throughput(args) {
  const n = args.jobs;
  if (!n) fail('--jobs is required');
  const workers = args.workers || 1;
  const timeoutMs = (args.timeout || 300) * 1000;
  const conn = connection(args.url);
  const queue = new Queue(QUEUE, { connection: conn, prefix: args.prefix });
  await queue.waitUntilReady();
  const redis = new IORedis(args.url);

  const t0 = performance.now();
  const BATCH = 1000;
  for (let added = 0; added < n; ) {
    const k = Math.min(BATCH, n - added);
    await queue.addBulk(Array.from({ length: k }, () => ({ name: 'noop', data: {} })));
    added += k;
  }
  const addS = (performance.now() - t0) / 1000;
  process.stderr.write(`added ${n} jobs in ${addS.toFixed(2)} s; starting ${workers} worker process(es)\n`);

  await redis.config('RESETSTAT');
  const { children, ready } = startWorkers(args, workers, 30);
  ready.catch((e) => process.stderr.write(`${e.message}\n`));
  const completedKey = `${args.prefix}:${QUEUE}:completed`;
  const failedKey = `${args.prefix}:${QUEUE}:failed`;
  const start = performance.now();
  let lastNote = start;
  let completed = 0;
  let failed = 0;
  try {
    for (;;) {
      const res = await redis.pipeline().zcard(completedKey).zcard(failedKey).exec();
      completed = res[0][1];
      failed = res[1][1];
      if (completed + failed >= n) break;
      const now = performance.now();
      if (now - start > timeoutMs) {
        throw new Error(`not drained after ${timeoutMs / 1000}s: ${completed} completed, ${failed} failed of ${n}`);
      }
      if (children.some((c) => c.exitCode !== null || c.signalCode !== null)) {
        throw new Error('a worker process exited during the run');
      }
      if (now - lastNote > 2000) {
        process.stderr.write(`drain: ${((now - start) / 1000).toFixed(0)}s: ${completed} completed\n`);
        lastNote = now;
      }
      await sleep(20);
    }
    const observedS = (performance.now() - start) / 1000;
    const stats = parseCommandstats(await redis.info('commandstats'));
    if (failed) throw new Error(`${failed} jobs failed`);

    let firstStart = Infinity;
    let lastEnd = 0;
    const ids = await redis.zrange(completedKey, 0, -1);
    for (let i = 0; i < ids.length; i += BATCH) {
      const p = redis.pipeline();
      for (const id of ids.slice(i, i + BATCH)) p.hmget(`${args.prefix}:${QUEUE}:${id}`, 'processedOn', 'finishedOn');
      for (const [err, [s, e]] of await p.exec()) {
        if (err) throw err;
        firstStart = Math.min(firstStart, Number(s));
        lastEnd = Math.max(lastEnd, Number(e));
      }
    }
    if (ids.length !== n) throw new Error(`expected ${n} completed jobs, found ${ids.length}`);
    const span = Math.max(lastEnd - firstStart, 1);
    console.log(`jobs=${n}`);
    console.log(`workers=${workers}`);
    console.log(`concurrency=${args.concurrency}`);
    console.log(`add_s=${addS.toFixed(3)}`);
    console.log(`add_rate_jobs_per_s=${Math.round(n / addS)}`);
    console.log(`first_start_ms=${firstStart}`);
    console.log(`last_end_ms=${lastEnd}`);
    console.log(`span_ms=${span}`);
    console.log(`throughput_jobs_per_s=${Math.round((n * 1000) / span)}`);
    console.log(`drain_observed_s=${observedS.toFixed(3)}`);
    // Our own polling (2 ZCARD per 20 ms) and the RESETSTAT are counted too:
    // about 0.02 commands per job at these rates.
    let total = 0;
    let topLevel = 0;
    for (const r of stats) {
      total += r.calls;
      if (/^(evalsha|eval|bzpopmin|bzpopmax|brpoplpush|blmove|xread|script_load)$/.test(r.name)) {
        topLevel += r.calls;
      }
      console.log(`cmd.${r.name}.calls_per_job=${(r.calls / n).toFixed(3)}`);
      console.log(`cmd.${r.name}.usec_per_call=${(r.usec / Math.max(r.calls, 1)).toFixed(2)}`);
    }
    console.log(`cmd_total_per_job=${(total / n).toFixed(2)}`);
    console.log(`round_trips_per_job=${(topLevel / n).toFixed(3)}`);
  } finally {
    await stopWorkers(children);
    await queue.close();
    redis.disconnect();
  }
}

async function latency(args) {
  const samples = args.samples;
  if (!samples) fail('--samples is required');
  const timeoutMs = (args.timeout || 10) * 1000;
  const conn = connection(args.url);
  const { children, ready } = startWorkers(args, 1, 30);
  const queue = new Queue(QUEUE, { connection: conn, prefix: args.prefix });
  const events = new QueueEvents(QUEUE, { connection: conn, prefix: args.prefix });
  try {
    await ready;
    await queue.waitUntilReady();
    await events.waitUntilReady();
    const start = [];
    const end = [];
    const roundTrip = [];
    for (let i = 0; i < args.warmup + samples; i++) {
      const t0 = performance.now();
      const job = await queue.add('noop', {});
      await job.waitUntilFinished(events, timeoutMs);
      const rt = performance.now() - t0;
      const done = await Job.fromId(queue, job.id);
      if (!done || !done.finishedOn) throw new Error(`job ${job.id} has no finishedOn`);
      if (i < args.warmup) continue;
      start.push(done.processedOn - done.timestamp);
      end.push(done.finishedOn - done.timestamp);
      roundTrip.push(rt);
    }
    console.log(`samples=${samples}`);
    for (const [name, values] of [
      ['add_to_start_ms', start],
      ['add_to_end_ms', end],
      ['driver_add_to_done_ms', roundTrip],
    ]) {
      values.sort((a, b) => a - b);
      const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(3));
      console.log(`${name}_p50=${fmt(percentile(values, 50))}`);
      console.log(`${name}_p99=${fmt(percentile(values, 99))}`);
      console.log(`${name}_max=${fmt(values[values.length - 1])}`);
    }
  } finally {
    await stopWorkers(children);
    await events.close();
    await queue.close();
  }
}

async function worker(args) {
  const w = new Worker(QUEUE, async () => null, {
    connection: connection(args.url),
    prefix: args.prefix,
    concurrency: args.concurrency,
  });
  w.on('error', (e) => process.stderr.write(`worker error: ${e.message}\n`));
  let closing = false;
  const stop = async () => {
    if (closing) process.exit(1);
    closing = true;
    await w.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await w.waitUntilReady();
  process.stdout.write(`ready pid=${process.pid}\n`);
}

const args = parseArgs(process.argv.slice(2));
const modes = {
  version: async () => {
    console.log(`bullmq=${versionOf('bullmq')}`);
    console.log(`ioredis=${versionOf('ioredis')}`);
    console.log(`node=${process.versions.node}`);
  },
  throughput,
  latency,
  worker,
};
if (!modes[args.mode]) fail(`unknown mode \`${args.mode}\` (version, throughput, latency or worker)`);
modes[args.mode](args).then(
  () => {
    if (args.mode !== 'worker') process.exit(0);
  },
  (e) => fail(e.stack || String(e)),
);
