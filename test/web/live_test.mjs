// The live view in a real browser: starts the demo with STICHOTROPE_HTTP on
// loopback and its load running, drives Debian's chromium through
// playwright-core, and checks what a user would: the demo's blocks in the
// table with counts that grow between refreshes, sorting by a column, a
// track switched off that stops growing while the others go on, the call
// tree and the timeline drawn, the downloads, and that controls are POST
// only. Saves a screenshot (the README's).
//
//   node live_test.mjs DEMO_BINARY WORK_DIR [SCREENSHOT.png]
//
// Bounded: every wait has a deadline; the demo ends by itself.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const [demo, work, screenshotOut] = process.argv.slice(2);
const DEADLINE_MS = 90_000;
setTimeout(() => fail('deadline reached'), DEADLINE_MS).unref();

let child = null;
let browser = null;
function fail(message) {
  console.log(`FAIL: ${message}`);
  if (child) child.kill('SIGKILL');
  if (browser) browser.close().catch(() => {});
  process.exit(1);
}
function check(cond, message) {
  if (!cond) fail(message);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const here = path.dirname(new URL(import.meta.url).pathname);
if (!fs.existsSync(path.join(here, 'node_modules', 'playwright-core')))
  fail('playwright-core is not installed in test/web (run ./setup.sh, which runs npm ci there)');
if (!fs.existsSync('/usr/bin/chromium')) fail("Debian's chromium is not installed (run ./setup.sh)");
const { chromium } = await import('playwright-core');


async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function main() {
  fs.mkdirSync(work, { recursive: true });
  const port = await freePort();
  const env = { ...process.env, STICHOTROPE_HTTP: `127.0.0.1:${port}` };
  child = spawn(demo, ['--live', '45', '--threads', '2', '--clients', '4', '--out', path.join(work, 'demo')], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  child.on('exit', (code) => {
    if (code !== 0 && code !== null) fail(`the demo exited with ${code}`);
  });
  const url = await new Promise((resolve) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /Live view: (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
  });
  console.log(`demo serves ${url}`);
  const base = url.replace(/\/$/, '');

  // The API, as any client sees it.
  const get = await fetch(`${base}/api/clear`);
  check(get.status === 405 && get.headers.get('allow') === 'POST', `GET /api/clear answered ${get.status}`);
  const bare = await fetch(`${base}/api/clear`, { method: 'POST' });
  check(bare.status === 403, `POST /api/clear without the control header answered ${bare.status}`);
  const results = await (await fetch(`${base}/api/results`)).json();
  check(results.profiler_name === 'AsyncServer', `results of ${results.profiler_name}`);

  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  const errors = [];
  let apiRequests = 0;
  page.on('request', (r) => r.url().includes('/api/') && apiRequests++);
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(url);
  const refreshes = () => page.evaluate(() => window.__live.refreshes);
  const waitRefreshes = async (n) => {
    const start = await refreshes();
    await page.waitForFunction((s) => window.__live.refreshes >= s, start + n, { timeout: 20_000 });
  };
  const hits = (name) =>
    page.evaluate((n) => {
      const rows = [...document.querySelectorAll(`#results-body tr[data-block="${n}"]`)];
      return rows.reduce((s, r) => s + Number(r.dataset.hits), 0);
    }, name);

  // The demo's blocks, growing between refreshes.
  await page.waitForSelector('#results-body tr[data-block="handle_request"]', { timeout: 20_000 });
  const blocks = await page.$$eval('#results-body tr', (rows) => [...new Set(rows.map((r) => r.dataset.block))]);
  for (const b of ['accept', 'read_request', 'handle_request', 'parse', 'backend_call', 'write_response',
                   'client_roundtrip', 'audit_record'])
    check(blocks.includes(b), `block ${b} not in the table (${blocks})`);
  const h0 = await hits('client_roundtrip');
  await waitRefreshes(2);
  const h1 = await hits('client_roundtrip');
  check(h1 > h0, `client_roundtrip did not grow between refreshes (${h0} -> ${h1})`);
  console.log(`table: ${blocks.length} blocks; client_roundtrip ${h0} -> ${h1} hits over two refreshes`);

  // Sorting: by hits, descending then ascending.
  await page.click('th[data-key="hit_count"]');
  await waitRefreshes(1);
  let order = await page.$$eval('#results-body tr', (rows) => rows.map((r) => Number(r.dataset.hits)));
  check(order.every((v, i) => i === 0 || order[i - 1] >= v), `not sorted by hits, descending: ${order}`);
  await page.click('th[data-key="hit_count"]');
  await waitRefreshes(1);
  order = await page.$$eval('#results-body tr', (rows) => rows.map((r) => Number(r.dataset.hits)));
  check(order.every((v, i) => i === 0 || order[i - 1] <= v), `not sorted by hits, ascending: ${order}`);
  await page.click('th[data-key="name"]');
  await waitRefreshes(1);
  const names = await page.$$eval('#results-body tr', (rows) => rows.map((r) => r.dataset.block));
  check(names.every((v, i) => i === 0 || names[i - 1].localeCompare(v) <= 0), `not sorted by name: ${names}`);
  console.log(`sorting: hits descending, ascending, names (${names.length} rows)`);

  // A track switched off stops growing; the others go on.
  await page.click('#tracks input[data-track="2"]'); // Handle
  await page.waitForFunction(
    () => document.querySelector('#tracks label[data-track="2"]').classList.contains('off'),
    null,
    { timeout: 10_000 },
  );
  const state = await (await fetch(`${base}/api/profilers`)).json();
  check(state.profilers[0].tracks.find((t) => t.track === 2).enabled === false, 'track 2 still on in the API');
  await waitRefreshes(2); // blocks open when it went off still close
  const off0 = await hits('handle_request');
  const on0 = await hits('client_roundtrip');
  await waitRefreshes(3);
  const off1 = await hits('handle_request');
  const on1 = await hits('client_roundtrip');
  check(off1 === off0, `handle_request grew with its track off (${off0} -> ${off1})`);
  check(on1 > on0, `client_roundtrip stopped growing (${on0} -> ${on1})`);
  const disabledRow = await page.$eval('#results-body tr[data-block="handle_request"]', (r) => r.className);
  check(disabledRow.includes('disabled'), 'the switched-off track is not shown as such');
  console.log(`track 2 off: handle_request stays at ${off0}, client_roundtrip ${on0} -> ${on1}`);
  await page.click('#tracks input[data-track="2"]');
  await page.waitForFunction(
    () => !document.querySelector('#tracks label[data-track="2"]').classList.contains('off'),
    null,
    { timeout: 10_000 },
  );

  // Filters and per-thread rows.
  await page.fill('#filter', 'write'); // applied at once, and kept by later refreshes
  await waitRefreshes(2);
  const filtered = await page.$$eval('#results-body tr', (rows) => rows.map((r) => r.dataset.block));
  check(filtered.length > 0 && filtered.every((n) => n.includes('write')), `filter: ${filtered}`);
  await page.fill('#filter', '');
  await page.check('#per-thread');
  await waitRefreshes(2);
  const threads = await page.$$eval('#results-body tr', (rows) => [...new Set(rows.map((r) => r.dataset.thread))]);
  check(threads.some((t) => t.startsWith('io-')), `per-thread rows name no io thread: ${threads}`);
  await page.uncheck('#per-thread');

  // The call tree and the timeline are drawn.
  await page.waitForFunction(() => window.__live.flameNodes > 3 && window.__live.timelineBars > 10, null, {
    timeout: 10_000,
  });
  const drawn = await page.evaluate(() => ({ ...window.__live }));
  // Where the requests waited: the table names each block's main await, the
  // icicle ends the blocks' stacks in [wait] frames.
  await page.waitForFunction(() => window.__live.waitFrames > 0, null, { timeout: 10_000 });
  const waited = await page.$eval('#results-body tr[data-block="handle_request"] td.waits', (td) => [td.textContent, td.title]);
  check(/async_server\.cpp:\d+/.test(waited[0]) && waited[1].includes('async_wait'), `handle_request waited on: ${waited}`);
  // Choose a flow as a user would pick it from the list (in one step: the
  // list follows the most recent flows). The most recent one may still be
  // in flight, its blocks not closed yet: like a user, try the next ones.
  let flow = null;
  let flowBars = 0;
  for (let attempt = 0; attempt < 5 && flowBars === 0; attempt++) {
    flow = await page.evaluate((n) => {
      const sel = document.getElementById('timeline-subject');
      const option = [...sel.options].filter((o) => o.value.startsWith('f'))[n];
      if (!option) return null;
      sel.value = option.value;
      sel.dispatchEvent(new Event('change'));
      return option.value;
    }, attempt);
    check(flow !== null, 'no flow to choose in the timeline');
    await waitRefreshes(2);
    const kept = await page.$eval('#timeline-subject', (s) => s.value);
    check(kept === flow, `the chosen flow ${flow} was not kept (${kept})`);
    flowBars = await page.evaluate(() => window.__live.timelineBars);
  }
  check(flowBars > 0, `flow ${flow}: no block drawn (5 flows tried)`);
  console.log(`drawn: ${drawn.flameNodes} icicle frames, ${drawn.timelineBars} timeline blocks, ` +
              `${drawn.timelineArrows} arrows; flow ${flow.slice(1)} alone: ${flowBars} blocks`);
  await page.selectOption('#timeline-subject', 'all');

  // Downloads are the results JSON and the trace.
  const href = await page.$eval('#download-json', (a) => a.href);
  const downloaded = await (await fetch(href)).json();
  check(downloaded.profiler_name === 'AsyncServer' && downloaded.tracks.length > 0, 'downloaded results');
  const trace = await (await fetch(await page.$eval('#download-trace', (a) => a.href))).json();
  check(Array.isArray(trace.traceEvents) && trace.traceEvents.length > 0, 'downloaded trace');

  // Stop, then start again, from the page.
  await page.click('#stop');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'stopped', null, {
    timeout: 10_000,
  });
  await page.click('#start');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'recording', null, {
    timeout: 10_000,
  });

  // A hidden page asks nothing of the program; shown again, it refreshes.
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { value: true, configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await sleep(700); // a poll in flight may still land
  const hidden0 = await refreshes();
  const requests0 = apiRequests;
  await sleep(2500);
  const hidden1 = await refreshes();
  check(hidden1 === hidden0, `a hidden page went on refreshing (${hidden0} -> ${hidden1})`);
  check(apiRequests === requests0, `a hidden page made ${apiRequests - requests0} API requests in 2.5 s`);
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { value: false, configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await waitRefreshes(2);
  console.log(`hidden: no refresh and no API request in 2.5 s; shown again: refreshing (${apiRequests} requests in all)`);

  await waitRefreshes(2);
  const shot = path.join(work, 'live-view.png');
  await page.screenshot({ path: shot, fullPage: true });
  if (screenshotOut) fs.copyFileSync(shot, screenshotOut);
  check(errors.length === 0, `the page reported errors: ${errors.join('; ')}`);
  console.log(`screenshot: ${shot}`);
  await browser.close();
  child.kill('SIGTERM');
  console.log('PASS');
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
