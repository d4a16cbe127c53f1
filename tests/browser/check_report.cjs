// Opens an HTML report in headless Chromium (Debian's, driven by playwright-core) and reports,
// as JSON on stdout: console errors and page errors, every network request the page made (file:
// and data: excluded), each chart's drawn elements, whether an XSS probe ran, and a screenshot.
//
//   PLAYWRIGHT_CORE=<dir of playwright-core> CHROMIUM=/usr/bin/chromium \
//     node check_report.cjs REPORT.html SCREENSHOT.png
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

(async () => {
  const [report, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  const requests = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => { if (!/^(file|data):/.test(r.url())) requests.push(r.url()); });
  await page.goto('file://' + report, { waitUntil: 'load' });
  await page.waitForTimeout(300);
  const charts = await page.$$eval('svg.chart', (svgs) => svgs.map((s) => ({
    title: s.getAttribute('aria-label'),
    drawn: s.querySelectorAll('polyline, rect.bar').length,
    noData: !!s.querySelector('.no-data'),
    width: s.getBoundingClientRect().width,
  })));
  const probe = await page.evaluate(() => ({ xss: window.__xss || null, title: document.title, scripts: document.scripts.length }));
  await page.screenshot({ path: screenshot, fullPage: true });
  await browser.close();
  process.stdout.write(JSON.stringify({ errors, requests, charts, probe }));
})().catch((e) => { console.error(e); process.exit(2); });
