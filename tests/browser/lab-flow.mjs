// A new user's first minutes on a Jupyter hub, in a real browser: log in
// with a password, start the server from the home page, land in JupyterLab,
// make a notebook with the Python 3 kernel, run `print(6*7)` and see `42`.
// It drives any hub that serves JupyterHub's pages (JupyterHub itself, or
// jhub), through its public URL.
//
//   node tests/browser/lab-flow.mjs --base http://127.0.0.1:PORT \
//       --user NAME --password PW --screenshot PATH [--timeout-ms N]
//
// The password may instead come from the environment variable
// LAB_FLOW_PASSWORD, which keeps it out of the process list.
//
// On success it saves a screenshot of the lab with the result to PATH and
// prints one JSON line on stdout: {"ok":true,"url":...,"output":"42",
// "screenshot":PATH,"notebook":...,"timings_ms":{step:ms},"steps":[[step,
// ms],...],...}, exit 0.
// On failure it prints the failing step, the page's URL and what the page
// showed on stderr, one JSON line {"ok":false,"step":...,"url":...,
// "error":...} on stdout, saves PATH with `.failed.png` in place of `.png`,
// and exits 1 (2 for bad arguments, 3 when the overall time ran out).
//
// Browser: Debian's /usr/bin/chromium (or $LAB_FLOW_CHROMIUM), headless,
// with a fresh temporary profile, driven by playwright-core from
// /opt/jhub-test/playwright (or $LAB_FLOW_PLAYWRIGHT_DIR), both installed
// by tests/setup-reference.sh. Every wait is bounded by what is left of
// the overall time (--timeout-ms, 180000 by default).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { launchChromium } from './flow-common.mjs';

const PLAYWRIGHT_DIR = process.env.LAB_FLOW_PLAYWRIGHT_DIR || '/opt/jhub-test/playwright';
const CHROMIUM = process.env.LAB_FLOW_CHROMIUM || '/usr/bin/chromium';

// JupyterLab 4 selectors (the names are JupyterLab's own CSS classes and
// data attributes, which its themes and extensions rely on).
const SEL = {
  loginUser: 'input[name=username]',
  loginPassword: 'input[name=password]',
  loginError: '.alert-danger, .login_error, p.error',
  start: '#start',
  labShell: '.jp-LabShell',
  splash: '#jupyterlab-splash',
  launcher: '.jp-Launcher',
  newLauncher: '[data-command="launcher:create"]',
  notebookCard: '.jp-LauncherCard[data-category="Notebook"]',
  notebookPanel: '.jp-NotebookPanel',
  // The status bar's kernel item for the current notebook (its title is
  // "Change kernel for NAME") reads "Python 3 (ipykernel) | Idle" only
  // once a kernel is connected and idle. The toolbar's execution
  // indicator says "idle" before there is any kernel, so it counts only
  // together with the first.
  kernelStatusItem: '#jp-main-statusbar .jp-StatusBar-TextItem[title^="Change kernel for "]',
  kernelIdleText: /\|\s*Idle$/,
  executionIdle: '.jp-Notebook-ExecutionIndicator[data-status="idle"]',
  dialog: '.jp-Dialog',
  cell: '.jp-Cell',
  cellEditor: '.jp-InputArea-editor .cm-content',
  focusedEditor: '.cm-editor.cm-focused',
  output: '.jp-OutputArea-output',
  currentTab: '.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel',
};
const KERNEL_LABEL = /^Python 3\b/;
const CODE = 'print(6*7)';
const EXPECTED = '42';

class StepError extends Error {}

function usage(message) {
  process.stderr.write(
    `lab-flow: ${message}\n` +
      'usage: node lab-flow.mjs --base URL --user NAME --password PW --screenshot PATH [--timeout-ms N]\n' +
      '       (or the password in $LAB_FLOW_PASSWORD)\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { timeoutMs: 180000, password: process.env.LAB_FLOW_PASSWORD };
  const names = { '--base': 'base', '--user': 'user', '--password': 'password', '--screenshot': 'screenshot', '--timeout-ms': 'timeoutMs' };
  for (let i = 0; i < argv.length; i++) {
    let [flag, value] = argv[i].split(/=(.*)/s, 2);
    if (!(flag in names)) usage(`unknown argument ${JSON.stringify(argv[i])}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) usage(`${flag} needs a value`);
      value = argv[++i];
    }
    opts[names[flag]] = value;
  }
  for (const key of ['base', 'user', 'password', 'screenshot']) {
    if (!opts[key]) usage(`--${key} is required`);
  }
  opts.timeoutMs = Number(opts.timeoutMs);
  if (!Number.isInteger(opts.timeoutMs) || opts.timeoutMs <= 0) usage('--timeout-ms must be a positive integer');
  let base;
  try {
    base = new URL(opts.base);
  } catch {
    usage(`--base is not a URL: ${opts.base}`);
  }
  // The hub's base URL: the path of --base, without a trailing slash.
  opts.prefix = base.pathname.replace(/\/+$/, '');
  opts.origin = base.origin;
  return opts;
}

function failedPath(screenshot) {
  return screenshot.endsWith('.png') ? screenshot.slice(0, -4) + '.failed.png' : screenshot + '.failed.png';
}

const opts = parseArgs(process.argv.slice(2));
const started = Date.now();
const deadline = started + opts.timeoutMs;
const timings = {};
const steps = []; // [name, ms], in the order they ran
let currentStep = 'launch';
let page = null;
let context = null;
let profile = null;

function remaining() {
  const left = deadline - Date.now();
  if (left <= 0) throw new StepError(`the overall time of ${opts.timeoutMs} ms ran out`);
  return left;
}

function lastLine(text) {
  return String(text).split('\n')[0];
}

async function step(name, body) {
  currentStep = name;
  const t0 = Date.now();
  const result = await body();
  timings[name] = Date.now() - t0;
  steps.push([name, timings[name]]);
  return result;
}

// Waits until `check()` returns a truthy value, polling every 250 ms; a
// StepError from `check` stops early, other errors (a page navigating
// away under a query) count as "not yet". Bounded by the overall deadline.
async function until(what, check) {
  let lastError = null;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      if (error instanceof StepError) throw error;
      lastError = error;
    }
    if (Date.now() + 250 >= deadline) {
      const why = lastError ? ` (last error: ${lastLine(lastError.message)})` : '';
      throw new StepError(`timed out waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function pathOf(url) {
  try {
    return new URL(url).pathname;
  } catch {
    return '';
  }
}

async function pageText() {
  if (!page) return '';
  try {
    const text = await page.locator('body').innerText({ timeout: 2000 });
    return text.replace(/\s+\n/g, '\n').trim().slice(0, 1500);
  } catch {
    return '';
  }
}

async function visible(selector) {
  return page.locator(selector).filter({ visible: true }).count();
}

async function run() {
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-flow-profile-'));
  await step('launch', async () => {
    ({ context, page } = await launchChromium(profile, Math.min(remaining(), 60000), {
      playwrightDir: PLAYWRIGHT_DIR,
      chromium: CHROMIUM,
    }));
  });
  const browserVersion = context.browser()?.version() ?? null;
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(lastLine(e.message)));

  const prefix = opts.prefix;
  const home = `${prefix}/hub/home`;
  const userPrefix = `${prefix}/user/${encodeURIComponent(opts.user)}/`;

  await step('login_page', async () => {
    const url = `${opts.origin}${prefix}/hub/login?next=${encodeURIComponent(home)}`;
    await page.goto(url, { timeout: remaining(), waitUntil: 'domcontentloaded' });
    await page.locator(SEL.loginUser).waitFor({ state: 'visible', timeout: remaining() });
  });

  await step('login', async () => {
    await page.locator(SEL.loginUser).fill(opts.user, { timeout: remaining() });
    await page.locator(SEL.loginPassword).fill(opts.password, { timeout: remaining() });
    const form = page.locator('form').filter({ has: page.locator(SEL.loginPassword) });
    const submit = form.locator('[type=submit]');
    if (await submit.count()) {
      await submit.first().click({ timeout: remaining(), noWaitAfter: true });
    } else {
      await page.locator(SEL.loginPassword).press('Enter', { timeout: remaining() });
    }
    // Either the hub sends us on to `next`, or it shows the form again
    // with an error: say which.
    await until(`${home} after logging in`, async () => {
      const p = pathOf(page.url());
      if (p === home) return true;
      if (p.endsWith('/hub/login') && (await visible(SEL.loginError))) {
        const message = await page.locator(SEL.loginError).filter({ visible: true }).first().innerText();
        throw new StepError(`the hub refused the login: ${message.trim()}`);
      }
      return false;
    });
    await page.locator(SEL.start).waitFor({ state: 'visible', timeout: remaining() });
  });

  await step('start_server', async () => {
    await page.locator(SEL.start).click({ timeout: remaining(), noWaitAfter: true });
    // The spawn-pending page, then the server, then the server's OAuth
    // round trip with the hub, then JupyterLab.
    await until(`a URL under ${userPrefix}`, async () => pathOf(page.url()).startsWith(userPrefix));
  });

  await step('lab_loaded', async () => {
    await page.locator(SEL.labShell).waitFor({ state: 'attached', timeout: remaining() });
    // Restored: the splash screen is gone and the file browser has listed
    // the home directory. A restored workspace may show documents and no
    // launcher; then open one, as a user would with the "+" button.
    await until('JupyterLab to finish restoring its workspace', async () =>
      page.evaluate(
        ([splash]) => !document.querySelector(splash) && !!document.querySelector('.jp-DirListing-content'),
        [SEL.splash],
      ),
    );
    if (!(await visible(SEL.launcher))) {
      await page.locator(SEL.newLauncher).filter({ visible: true }).first().click({ timeout: remaining() });
    }
    await page
      .locator(SEL.notebookCard)
      .filter({ visible: true })
      .first()
      .waitFor({ state: 'visible', timeout: remaining() });
  });

  // The notebook the launcher makes is told apart from any a restored
  // workspace shows by its panel's DOM id (hidden panels stay in the DOM,
  // hidden in one of several ways).
  let panel = null;
  const notebookName = await step('new_notebook', async () => {
    const cards = page.locator(SEL.notebookCard).filter({ visible: true });
    const titles = await cards.evaluateAll((els) => els.map((e) => e.getAttribute('title') || e.innerText));
    const index = titles.findIndex((t) => KERNEL_LABEL.test(t.trim()));
    if (index < 0) throw new StepError(`no Python 3 notebook card in the launcher; cards: ${JSON.stringify(titles)}`);
    const panelIds = () => page.locator(SEL.notebookPanel).evaluateAll((els) => els.map((e) => e.id));
    const before = new Set(await panelIds());
    await cards.nth(index).click({ timeout: remaining() });
    const id = await until('a new notebook panel', async () => (await panelIds()).find((i) => i && !before.has(i)));
    panel = page.locator(`${SEL.notebookPanel}[id="${id}"]`);
    await panel.locator(SEL.cell).first().waitFor({ state: 'visible', timeout: remaining() });
    return (await page.locator(SEL.currentTab).first().innerText({ timeout: remaining() })).trim();
  });

  await step('kernel_idle', async () => {
    await until('the kernel to be idle', async () => {
      if (await visible(SEL.dialog)) {
        const text = await page.locator(SEL.dialog).filter({ visible: true }).first().innerText();
        throw new StepError(`a dialog is in the way: ${text.replace(/\s+/g, ' ').trim()}`);
      }
      const items = await page
        .locator(SEL.kernelStatusItem)
        .evaluateAll((els) => els.map((e) => [e.getAttribute('title'), e.textContent.trim()]));
      const ours = items.find(([title]) => title === `Change kernel for ${notebookName}`);
      return ours && SEL.kernelIdleText.test(ours[1]) && (await panel.locator(SEL.executionIdle).count()) > 0;
    });
  });

  const output = await step('run_cell', async () => {
    const cell = panel.locator(SEL.cell).first();
    await cell.locator(SEL.cellEditor).click({ timeout: remaining() });
    await cell.locator(SEL.focusedEditor).waitFor({ state: 'visible', timeout: remaining() });
    await page.keyboard.type(CODE);
    const typed = await cell.locator(SEL.cellEditor).innerText({ timeout: remaining() });
    if (typed.trim() !== CODE) throw new StepError(`the cell holds ${JSON.stringify(typed)}, not ${JSON.stringify(CODE)}`);
    await page.keyboard.press('Shift+Enter');
    return until(`an output of exactly ${EXPECTED}`, async () => {
      const texts = (await cell.locator(SEL.output).allInnerTexts()).map((t) => t.trim());
      if (texts.includes(EXPECTED)) return EXPECTED;
      const other = texts.filter((t) => t);
      if (other.length) throw new StepError(`the cell's output is ${JSON.stringify(other)}, not ${EXPECTED}`);
      return null;
    });
  });

  await step('screenshot', async () => {
    fs.mkdirSync(path.dirname(path.resolve(opts.screenshot)), { recursive: true });
    await page.screenshot({ path: opts.screenshot, fullPage: true, timeout: remaining() });
  });

  const result = {
    ok: true,
    url: page.url(),
    output,
    screenshot: path.resolve(opts.screenshot),
    notebook: notebookName,
    browser: browserVersion,
    timings_ms: timings,
    steps,
    total_ms: Date.now() - started,
    page_errors: pageErrors.slice(0, 10),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

async function fail(error, code) {
  const url = page ? page.url() : null;
  const message = error instanceof StepError ? error.message : lastLine(error?.message ?? error);
  let shot = null;
  if (page) {
    try {
      shot = path.resolve(failedPath(opts.screenshot));
      fs.mkdirSync(path.dirname(shot), { recursive: true });
      await page.screenshot({ path: shot, fullPage: true, timeout: 10000 });
    } catch {
      shot = null;
    }
  }
  const text = await pageText();
  process.stderr.write(
    `lab-flow: step '${currentStep}' failed at ${url ?? '(no page)'}: ${message}\n` +
      (shot ? `lab-flow: screenshot of the failure: ${shot}\n` : '') +
      (text ? `lab-flow: the page showed:\n${text}\n` : ''),
  );
  if (!(error instanceof StepError) && error?.stack) process.stderr.write(`${error.stack}\n`);
  const result = { ok: false, step: currentStep, url, error: message, screenshot: shot, timings_ms: timings, total_ms: Date.now() - started };
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exitCode = code;
}

async function cleanup() {
  if (context) await context.close().catch(() => {});
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
}

// A last bound for what the deadline cannot interrupt (a browser that
// hangs while starting or closing).
const watchdog = setTimeout(async () => {
  process.stderr.write(`lab-flow: step '${currentStep}' still running ${opts.timeoutMs + 20000} ms after the start; giving up\n`);
  process.stdout.write(JSON.stringify({ ok: false, step: currentStep, url: page?.url() ?? null, error: 'overall time ran out', timings_ms: timings }) + '\n');
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
  process.exit(3);
}, opts.timeoutMs + 20000);

try {
  await run();
} catch (error) {
  await fail(error, 1);
} finally {
  await cleanup();
  clearTimeout(watchdog);
}
