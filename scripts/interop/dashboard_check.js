#!/usr/bin/env node
// The migration dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by the npm
// package playwright-core: no browser download), as scripts/interop.sh's check_dashboard runs it.
//
//   node dashboard_check.js CONVERTER_URL SCREENSHOT.png PAGE_TEXT_OUT TYPE:CODE...
//
// Loads CONVERTER_URL/dashboard with every request to any other origin refused (and counted as
// a failure: the page must work with no network but the converter), waits for one table row
// per TYPE:CODE (data-organisation) and for the stacked bar chart (canvas#calls-chart) to be
// drawn, and checks:
//   - Chart.js (served by the converter at /dashboard/chart.js) made a bar chart on the
//     canvas with one dataset per calling organisation and data in it, and the canvas has
//     coloured pixels (its toDataURL differs from a blank canvas of the same size);
//   - each row's calls, fault rate and cutover state are the ones /api/migration gives;
//   - the WSRM section ("who still polls WSRM, how far behind") is hidden when /api/migration's
//     wsrm is empty (no WSRM configured), and otherwise has one row per configured subscriber
//     with its queue depth, and its last poll when the subscriber called CreateSequence;
//   - no console error, no page error, no failed request.
// Writes a full-page PNG screenshot and the page's visible text (for the CPR scan).
// Environment: CHROMIUM (default /usr/bin/chromium), DASHBOARD_TIMEOUT_MS (default 30000).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const [converterUrl, screenshot, textOut, ...organisations] = process.argv.slice(2);
if (!converterUrl || !screenshot || !textOut || organisations.length === 0) {
  console.error('usage: dashboard_check.js CONVERTER_URL SCREENSHOT.png PAGE_TEXT_OUT TYPE:CODE...');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const timeout = Number(process.env.DASHBOARD_TIMEOUT_MS || 30000);
const origin = new URL(converterUrl).origin;

const failures = [];
const check = (ok, what) => {
  if (ok) {
    console.log(`  ok: ${what}`);
  } else {
    console.log(`  FAIL: ${what}`);
    failures.push(what);
  }
};

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'vos-dashboard-chromium-'));
  const t0 = Date.now();
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      viewport: { width: 1440, height: 900 },
      locale: 'da-DK',
      timezoneId: 'Europe/Copenhagen',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-default-apps',
        '--disable-extensions',
        '--metrics-recording-only',
      ],
      timeout,
    });
    console.log(`  chromium ${context.browser() ? context.browser().version() : '(persistent context)'} ` +
      `started in ${Date.now() - t0} ms`);

    // No network but the converter: anything else is refused and counted.
    const offOrigin = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      let o = null;
      try {
        o = new URL(url).origin;
      } catch (e) {
        o = null;
      }
      if (o === origin || url.startsWith('data:') || url.startsWith('blob:')) {
        return route.continue();
      }
      offOrigin.push(url);
      return route.abort('blockedbyclient');
    });

    const page = context.pages()[0] || (await context.newPage());
    const consoleErrors = [];
    const failedRequests = [];
    const loaded = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('requestfailed', (r) => failedRequests.push(`${r.url()}: ${r.failure() && r.failure().errorText}`));
    page.on('response', (r) => loaded.push(`${r.status()} ${r.url()}`));

    const t1 = Date.now();
    const response = await page.goto(`${converterUrl}/dashboard`, { waitUntil: 'load', timeout });
    check(response && response.status() === 200, `GET /dashboard -> ${response && response.status()}`);
    check(/text\/html/.test((response && response.headers()['content-type']) || ''), 'the page is text/html');

    await page.waitForSelector('body[data-state="ready"]', { timeout });
    for (const org of organisations) {
      await page.waitForSelector(`tr[data-organisation="${org}"]`, { timeout });
    }
    console.log(`  page ready with ${organisations.length} organisations in ${Date.now() - t1} ms`);

    // The chart: Chart.js made it, with data, and drew pixels.
    const chart = await page.evaluate(() => {
      const canvas = document.getElementById('calls-chart');
      const c = typeof Chart !== 'undefined' ? Chart.getChart(canvas) : null;
      if (!canvas) return { canvas: false };
      const blank = document.createElement('canvas');
      blank.width = canvas.width;
      blank.height = canvas.height;
      const ctx = canvas.getContext('2d');
      const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let painted = 0;
      let coloured = 0;
      for (let i = 0; i < pixels.length; i += 4) {
        if (pixels[i + 3] > 0) {
          painted++;
          const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
          if (Math.max(r, g, b) - Math.min(r, g, b) > 40) coloured++;
        }
      }
      return {
        canvas: true,
        chartVersion: typeof Chart !== 'undefined' ? Chart.version : null,
        type: c ? c.config.type : null,
        width: canvas.width,
        height: canvas.height,
        labels: c ? c.data.labels.length : 0,
        datasets: c ? c.data.datasets.map((d) => ({ label: d.label, sum: d.data.reduce((a, b) => a + b, 0) })) : [],
        stacked: c ? !!(c.options.scales.x.stacked && c.options.scales.y.stacked) : false,
        differsFromBlank: canvas.toDataURL() !== blank.toDataURL(),
        painted,
        coloured,
      };
    });
    check(chart.canvas, 'canvas#calls-chart exists');
    check(chart.chartVersion !== null, `Chart.js loaded from the converter (v${chart.chartVersion})`);
    check(chart.type === 'bar' && chart.stacked, `a stacked bar chart (${chart.type}, stacked ${chart.stacked})`);
    const withData = chart.datasets.filter((d) => d.sum > 0);
    check(withData.length >= organisations.length,
      `${withData.length} datasets with calls: ${chart.datasets.map((d) => `${d.label}=${d.sum}`).join(', ')}`);
    check(chart.differsFromBlank && chart.coloured > 100,
      `the canvas is drawn (${chart.width}x${chart.height}, ${chart.painted} painted pixels, ${chart.coloured} coloured)`);

    // The rows against /api/migration, fetched by the page itself (same origin).
    const api = await page.evaluate(async () => (await fetch('/api/migration', { cache: 'no-store' })).json());
    const rows = await page.evaluate(() =>
      Array.from(document.querySelectorAll('tr[data-organisation]')).map((tr) => ({
        key: tr.getAttribute('data-organisation'),
        pastCalling: tr.classList.contains('past-calling'),
        cells: Array.from(tr.cells).map((td) => td.innerText.trim()),
      })),
    );
    const nf = new Intl.NumberFormat('da-DK');
    for (const org of organisations) {
      const o = api.organisations.find((x) => `${x.organisationType}:${x.organisationCode}` === org);
      const r = rows.find((x) => x.key === org);
      check(!!o, `${org} is in /api/migration`);
      check(!!r, `${org} has a row`);
      if (!o || !r) continue;
      check(r.cells[0].includes(o.organisationTypeName) && r.cells[0].includes(o.organisationCode),
        `${org} row names ${o.organisationTypeName} ${o.organisationCode}`);
      check(r.cells[3] === nf.format(o.calls), `${org} row shows ${o.calls} calls (${r.cells[3]})`);
      const pct = new Intl.NumberFormat('da-DK', { style: 'percent', maximumFractionDigits: 1 }).format(o.faultRate);
      check(r.cells[4] === pct, `${org} row shows fault rate ${pct} (${r.cells[4]})`);
      for (const f of o.faultsByCode) {
        const shown = `${f.code} × ${nf.format(f.count)}`;
        check(r.cells[5].includes(shown), `${org} row lists fault ${shown}`);
      }
      const days = Math.abs(o.daysToCutover);
      check(r.cells[2].includes(nf.format(days)) && (o.pastCutover ? /forbi/.test(r.cells[2]) : /tilbage|i dag/.test(r.cells[2])),
        `${org} row: ${o.pastCutover ? `${days} days past` : `${days} days left`} (${r.cells[2].replace(/\s+/g, ' ')})`);
      check(r.pastCalling === o.pastCutover,
        `${org} row ${o.pastCutover ? 'is' : 'is not'} marked "past cutover, still calling"`);
      for (const op of o.operations) {
        check(r.cells[7].includes(op.operation), `${org} row lists ${op.service}/${op.operation}`);
      }
    }
    check(rows.length === api.organisations.length,
      `one row per organisation of /api/migration (${rows.length} rows, ${api.organisations.length} organisations)`);

    // WSRM: who still polls, how far behind (only with WSRM configured).
    const wsrm = await page.evaluate(() => {
      const section = document.getElementById('wsrm');
      return {
        exists: !!section,
        hidden: section ? section.hidden : true,
        rows: Array.from(document.querySelectorAll('#wsrm-body tr[data-subscriber]')).map((tr) => ({
          key: tr.getAttribute('data-subscriber'),
          subscriber: !tr.hasAttribute('data-not-subscriber'),
          cells: Array.from(tr.cells).map((td) => td.innerText.trim()),
        })),
      };
    });
    const queues = Array.isArray(api.wsrm) ? api.wsrm : [];
    check(wsrm.exists, 'section#wsrm exists');
    check(wsrm.hidden === (queues.length === 0),
      `the WSRM section is ${queues.length === 0 ? 'hidden (no WSRM subscribers)' : `shown (${queues.length} subscribers)`}`);
    for (const q of queues) {
      const r = wsrm.rows.find((x) => x.key === q.subscriber && x.subscriber);
      check(!!r, `WSRM subscriber ${q.subscriber} has a row`);
      if (!r) continue;
      const depth = q.depth === null ? '?' : nf.format(q.depth);
      check(r.cells[1] === depth, `WSRM ${q.subscriber} row shows depth ${depth} (${r.cells[1]})`);
      const o = api.organisations.find((x) => `${x.organisationType}:${x.organisationCode}` === q.subscriber);
      const poll = o && o.operations.find((op) => op.service === 'WsrmService' && op.operation === 'CreateSequence');
      check(!!(poll && poll.lastSeen) === !/ikke hentet/.test(r.cells[3]),
        `WSRM ${q.subscriber} row: ${poll && poll.lastSeen ? 'last poll shown' : 'not polled'} (${r.cells[3].replace(/\s+/g, ' ')})`);
    }
    check(wsrm.rows.filter((x) => x.subscriber).length === queues.length,
      `one WSRM row per configured subscriber (${wsrm.rows.filter((x) => x.subscriber).length} rows, ${queues.length} subscribers)`);

    const overhead = await page.evaluate(() => document.getElementById('card-overhead').innerText);
    check(overhead.includes(nf.format(api.overhead.p50Micros)) && /µs/.test(overhead),
      `overhead p50/p99 shown (${overhead}; API ${api.overhead.p50Micros}/${api.overhead.p99Micros} µs)`);
    const width = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, view: window.innerWidth }));
    check(width.scroll <= width.view, `the page fits the viewport's width (${width.scroll} <= ${width.view} px)`);
    const status = await page.evaluate(() => document.getElementById('status').innerText);
    check(/Sidst opdateret/.test(status), `"last updated" shown (${status})`);

    // Auto-refresh: a new /api/migration fetch within the refresh interval (10 s).
    const refreshed = await page
      .waitForResponse((r) => r.url() === `${origin}/api/migration` && r.request().frame() === page.mainFrame(), {
        timeout: 15000,
      })
      .then(() => true, () => false);
    check(refreshed, 'the page fetches /api/migration again by itself (auto-refresh)');

    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`  screenshot: ${screenshot}`);
    fs.writeFileSync(textOut, await page.evaluate(() => document.body.innerText + '\n' + document.documentElement.outerHTML));

    check(offOrigin.length === 0, `no request left the converter${offOrigin.length ? `: ${offOrigin.join(', ')}` : ''}`);
    check(consoleErrors.length === 0, `no console or page error${consoleErrors.length ? `: ${consoleErrors.join(' | ')}` : ''}`);
    check(failedRequests.length === 0, `no failed request${failedRequests.length ? `: ${failedRequests.join(', ')}` : ''}`);
    console.log(`  requests: ${[...new Set(loaded.map((l) => l.replace(origin, '')))].join(', ')}`);
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(
  () => {
    if (failures.length) {
      console.error(`dashboard check: ${failures.length} failed`);
      process.exit(1);
    }
    console.log('dashboard check: passed');
  },
  (e) => {
    console.error(`dashboard check: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
