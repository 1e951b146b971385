// Browser tests of the web console: headless Debian Chromium driven by playwright-core (no
// browser download). tests/test_console.py starts the server, prepares the executions named
// in BATON_CONSOLE_CASE (JSON), and runs this script; screenshots go to BATON_SCREENSHOTS.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';

const base = process.env.BATON_HTTP;
const shots = process.env.BATON_SCREENSHOTS;
const data = JSON.parse(process.env.BATON_CONSOLE_CASE);
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const outside = [];
const errors = [];
const pages = [];

async function open(tokenValue) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  if (tokenValue) {
    await context.addInitScript((t) => sessionStorage.setItem('baton-token', t), tokenValue);
  }
  const page = await context.newPage();
  page.on('request', (request) => {
    if (!request.url().startsWith(base)) outside.push(request.url());
  });
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('dialog', (dialog) => dialog.accept());
  pages.push(page);
  return page;
}

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    console.log(`FAIL ${name}: ${error.stack || error}`);
    process.exitCode = 1;
    const slug = name.replace(/[^a-z0-9]+/gi, '-');
    for (const [i, page] of pages.entries()) {
      await page.screenshot({ path: `${shots}/FAILED-${slug}-${i}.png`, fullPage: true }).catch(() => {});
    }
  }
}

const operator = await open(data.operator);

await step('a run started from its workflow page turns green step by step', async () => {
  await operator.goto(`${base}/#/workflows/greet`);
  await operator.fill('form.run-form input[name=name]', 'Ada');
  await operator.click('form.run-form button[type=submit]');
  await operator.waitForURL(/#\/executions\//);
  await operator.screenshot({ path: `${shots}/run-started.png` });
  await operator.waitForFunction(() => {
    const steps = [...document.querySelectorAll('g.step')];
    return steps.length === 3 && steps.every((s) => s.dataset.state === 'STATE_SUCCEEDED');
  }, null, { timeout: 20000 });
  await operator.waitForSelector('#execution-state .STATE_SUCCEEDED');
  const seen = await operator.$$eval('table.events tr[data-sequence]', (rows) => rows.length);
  assert.ok(seen >= 11, `the event log shows ${seen} events`);
  assert.match(await operator.textContent('main'), /"name": "Ada"/);
  await operator.screenshot({ path: `${shots}/run-succeeded.png`, fullPage: true });
});

await step('cancel a running execution', async () => {
  await operator.goto(`${base}/#/${data.slow}`);
  await operator.waitForSelector('g.step[data-state=STATE_RUNNING]');
  await operator.click('button[data-action=cancel]');
  await operator.waitForSelector('#execution-state .STATE_CANCELLED', { timeout: 10000 });
  await operator.waitForSelector('g.step[data-state=STATE_CANCELLED]');
  assert.equal(await operator.$('button[data-action=cancel]'), null);
  await operator.screenshot({ path: `${shots}/cancelled.png` });
});

await step('retry, pause and resume it', async () => {
  await operator.click('button[data-action=retry]');
  await operator.waitForSelector('#execution-state .STATE_RUNNING', { timeout: 10000 });
  await operator.click('button[data-action=pause]');
  await operator.waitForSelector('#execution-state .STATE_PAUSED', { timeout: 10000 });
  await operator.click('button[data-action=resume]');
  await operator.waitForSelector('#execution-state .STATE_RUNNING', { timeout: 10000 });
  await operator.click('button[data-action=cancel]');
  await operator.waitForSelector('#execution-state .STATE_CANCELLED', { timeout: 10000 });
  const attempts = await operator.$$eval('.timeline .bar', (bars) => bars.length);
  assert.ok(attempts >= 2, `the timeline shows ${attempts} attempts`);
});

await step('approve a waiting step', async () => {
  await operator.goto(`${base}/#/${data.gate}`);
  await operator.waitForSelector('g.step[data-step=review][data-state=STATE_WAITING]');
  await operator.click('button[data-action=approveStep].primary');
  await operator.waitForSelector('#execution-state .STATE_SUCCEEDED', { timeout: 10000 });
  await operator.screenshot({ path: `${shots}/approved.png` });
});

await step('page through 1,000 executions', async () => {
  await operator.goto(`${base}/#/executions?workflow=bulk`);
  const names = new Set();
  for (let number = 1; ; number++) {
    await operator.waitForFunction((n) => document.querySelector('.page-number')?.textContent === `page ${n}`, number);
    const rows = await operator.$$eval('tr[data-name]', (found) => found.map((r) => r.dataset.name));
    assert.ok(rows.length > 0 && rows.length <= 50, `page ${number} has ${rows.length} rows`);
    rows.forEach((n) => names.add(n));
    if (number === 2) await operator.screenshot({ path: `${shots}/executions-page-2.png` });
    if (await operator.isDisabled('button.next')) break;
    await operator.click('button.next');
  }
  assert.equal(names.size, 1000);
});

await step('loops, maps and child workflows are drawn as such', async () => {
  await operator.goto(`${base}/#/${data.shapes}`);
  await operator.waitForSelector('#execution-state .STATE_SUCCEEDED', { timeout: 20000 });
  await operator.waitForSelector('path.loop');
  assert.match(await operator.textContent('text.loop-label'), /loop until/);
  assert.match(await operator.textContent('g.step[data-step=each]'), /× 3\/3/);
  assert.match(await operator.textContent('g.step[data-step=child]'), /child: greet/);
  const link = await operator.getAttribute('a:has(g.step[data-step=child])', 'href');
  assert.match(link, /^#\/executions\//);
  await operator.screenshot({ path: `${shots}/shapes.png`, fullPage: true });
});

await step('metrics are drawn as charts', async () => {
  await operator.goto(`${base}/#/metrics?workflow=greet`);
  await operator.waitForSelector('canvas#success-rate');
  await operator.waitForFunction(() => window.Chart && Object.keys(window.Chart.instances).length === 2);
  await operator.waitForSelector('table tr td');
  await operator.screenshot({ path: `${shots}/metrics.png`, fullPage: true });
});

await step('agents, tools and handoffs are listed', async () => {
  await operator.goto(`${base}/#/agents`);
  await operator.waitForSelector('text=test_agents_lib:slow');
  await operator.goto(`${base}/#/tools`);
  await operator.waitForSelector('text=lookup');
  await operator.goto(`${base}/#/handoffs`);
  await operator.waitForSelector('text=echo-to-adder');
});

await step('a schedule is paused and unpaused', async () => {
  await operator.goto(`${base}/#/schedules`);
  await operator.waitForSelector('tr[data-name="schedules/nightly"] .STATE_ACTIVE');
  assert.match(await operator.textContent('tr[data-name="schedules/nightly"]'), /cron 0 3 \* \* \*/);
  await operator.click('tr[data-name="schedules/nightly"] button[data-action=pause]');
  await operator.waitForSelector('tr[data-name="schedules/nightly"] .STATE_PAUSED');
  await operator.click('tr[data-name="schedules/nightly"] button[data-action=unpause]');
  await operator.waitForSelector('tr[data-name="schedules/nightly"] .STATE_ACTIVE');
  await operator.screenshot({ path: `${shots}/schedules.png` });
});

await step('a reader sees no write actions but may decide approvals', async () => {
  const reader = await open(data.reader);
  await reader.goto(`${base}/#/${data.gate_for_reader}`);
  await reader.waitForSelector('g.step[data-step=review][data-state=STATE_WAITING]');
  assert.ok(await reader.$('button[data-action=approveStep]'));
  assert.equal(await reader.$('button[data-action=cancel]'), null);
  await reader.goto(`${base}/#/workflows/greet`);
  await reader.waitForSelector('form.run-form');
  assert.ok(await reader.isDisabled('form.run-form button[type=submit]'));
  await reader.screenshot({ path: `${shots}/reader.png` });
});

await step('without a token the console asks for one', async () => {
  const stranger = await open('');
  await stranger.goto(`${base}/`);
  await stranger.waitForSelector('text=Sign in');
  await stranger.fill('input[name=token]', 'wrong');
  await stranger.click('button[type=submit]');
  await stranger.waitForSelector('text=not known here');
  await stranger.fill('input[name=token]', data.operator);
  await stranger.click('button[type=submit]');
  await stranger.waitForSelector('table.executions');
});

await browser.close();
if (outside.length) {
  console.log(`FAIL the console fetched from outside the server: ${outside.join(', ')}`);
  process.exitCode = 1;
}
if (errors.length) {
  console.log(`FAIL the page raised: ${errors.join(' | ')}`);
  process.exitCode = 1;
}
