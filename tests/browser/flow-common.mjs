// What the browser flows share: launching Debian's headless Chromium
// through playwright-core (one set of flags, a fresh temporary profile;
// lab-flow.mjs launches through it too), named steps with timings, bounded waits, the login
// form, and the one-JSON-line report on stdout.
//
// Environment: FLOW_PLAYWRIGHT_DIR (default /opt/jhub-test/playwright),
// FLOW_CHROMIUM (default /usr/bin/chromium).

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PLAYWRIGHT_DIR = process.env.FLOW_PLAYWRIGHT_DIR || '/opt/jhub-test/playwright';
const CHROMIUM = process.env.FLOW_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Containers often give /dev/shm only 64 MiB; the profile's temp dir
  // has room.
  '--disable-dev-shm-usage',
];

// Launches headless Chromium (the binary `chromium`, playwright-core from
// `playwrightDir`) with a persistent context in the fresh profile
// directory `profile`; resolves to the context and its first page.
export async function launchChromium(profile, timeoutMs, {
  playwrightDir = PLAYWRIGHT_DIR,
  chromium: executablePath = CHROMIUM,
} = {}) {
  const { chromium } = createRequire(path.join(playwrightDir, 'package.json'))('playwright-core');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 900 },
    timeout: timeoutMs,
  });
  const page = context.pages()[0] || (await context.newPage());
  return { context, page };
}

export class StepError extends Error {}

export function lastLine(text) {
  return String(text).split('\n')[0];
}

export function pathOf(url) {
  try {
    return new URL(url).pathname;
  } catch {
    return '';
  }
}

// One run of a flow: `name` labels its messages; the whole run is
// bounded by `timeoutMs`.
export class Flow {
  constructor(name, timeoutMs) {
    this.name = name;
    this.timeoutMs = timeoutMs;
    this.started = Date.now();
    this.deadline = this.started + timeoutMs;
    this.steps = [];
    this.currentStep = 'launch';
    this.page = null;
    this.context = null;
    this.profile = null;
  }

  remaining() {
    const left = this.deadline - Date.now();
    if (left <= 0) throw new StepError(`the overall time of ${this.timeoutMs} ms ran out`);
    return left;
  }

  async step(name, body) {
    this.currentStep = name;
    const t0 = Date.now();
    const result = await body();
    this.steps.push([name, Date.now() - t0]);
    return result;
  }

  // Polls `check()` every 250 ms until it returns a truthy value; a
  // StepError stops early, other errors count as "not yet".
  async until(what, check) {
    let lastError = null;
    for (;;) {
      try {
        const value = await check();
        if (value) return value;
      } catch (error) {
        if (error instanceof StepError) throw error;
        lastError = error;
      }
      if (Date.now() + 250 >= this.deadline) {
        const why = lastError ? ` (last error: ${lastLine(lastError.message)})` : '';
        throw new StepError(`timed out waiting for ${what}${why}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async launch() {
    this.profile = fs.mkdtempSync(path.join(os.tmpdir(), `${this.name}-profile-`));
    await this.step('launch', async () => {
      ({ context: this.context, page: this.page } = await launchChromium(
        this.profile,
        Math.min(this.remaining(), 60000),
      ));
    });
    this.pageErrors = [];
    this.page.on('pageerror', (e) => this.pageErrors.push(lastLine(e.message)));
    // the flows accept the page's confirm() dialogs, and answer prompt()
    // with `promptAnswer` when set
    this.promptAnswer = null;
    this.page.on('dialog', (d) => {
      const answer = d.type() === 'prompt' && this.promptAnswer !== null ? this.promptAnswer : undefined;
      d.accept(answer).catch(() => {});
    });
  }

  // Logs in through the login form and waits to land on `next`.
  async login(origin, prefix, user, password, next) {
    const page = this.page;
    await page.goto(`${origin}${prefix}/hub/login?next=${encodeURIComponent(next)}`, {
      timeout: this.remaining(),
      waitUntil: 'domcontentloaded',
    });
    await page.locator('input[name=username]').fill(user, { timeout: this.remaining() });
    await page.locator('input[name=password]').fill(password, { timeout: this.remaining() });
    const form = page.locator('form').filter({ has: page.locator('input[name=password]') });
    await form.locator('[type=submit]').first().click({ timeout: this.remaining(), noWaitAfter: true });
    await this.until(`${next} after logging in as ${user}`, async () => {
      if (pathOf(page.url()) === next) return true;
      const error = page.locator('.alert-danger, .login_error, p.error').filter({ visible: true });
      if (pathOf(page.url()).endsWith('/hub/login') && (await error.count())) {
        throw new StepError(`the hub refused the login of ${user}: ${(await error.first().innerText()).trim()}`);
      }
      return false;
    });
  }

  async screenshot(file) {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    await this.page.screenshot({ path: file, fullPage: true, timeout: this.remaining() });
  }

  // A checkpoint: prints {"event": NAME, ...details} and, when `goDir` is
  // set, waits for the file goDir/NAME, which the caller makes once it has
  // checked the system at this point.
  async checkpoint(goDir, name, details) {
    this.emit({ event: name, ...(details || {}) });
    if (!goDir) return;
    const file = path.join(goDir, name);
    await this.until(`the caller's go-ahead (${file})`, async () => fs.existsSync(file));
  }

  emit(object) {
    process.stdout.write(JSON.stringify(object) + '\n');
  }

  // Runs `body(flow)`; prints its result (plus timings) as the last JSON
  // line, or the failing step with a screenshot (`failShot`) and exit 1.
  async run(failShot, body) {
    const watchdog = setTimeout(() => {
      this.emit({ ok: false, step: this.currentStep, error: 'overall time ran out' });
      if (this.profile) fs.rmSync(this.profile, { recursive: true, force: true });
      process.exit(3);
    }, this.timeoutMs + 20000);
    try {
      await this.launch();
      const result = await body(this);
      this.emit({ ok: true, ...result, steps: this.steps, page_errors: this.pageErrors.slice(0, 10), total_ms: Date.now() - this.started });
    } catch (error) {
      const url = this.page ? this.page.url() : null;
      const message = error instanceof StepError ? error.message : lastLine(error?.message ?? error);
      let text = '';
      if (this.page) {
        try {
          await this.page.screenshot({ path: failShot, fullPage: true, timeout: 10000 });
          text = (await this.page.locator('body').innerText({ timeout: 2000 })).slice(0, 1500);
        } catch {
          // the page is gone; the message says enough
        }
      }
      process.stderr.write(`${this.name}: step '${this.currentStep}' failed at ${url}: ${message}\n${text}\n`);
      if (!(error instanceof StepError) && error?.stack) process.stderr.write(`${error.stack}\n`);
      this.emit({ ok: false, step: this.currentStep, url, error: message, steps: this.steps, page_errors: this.pageErrors || [] });
      process.exitCode = 1;
    } finally {
      if (this.context) await this.context.close().catch(() => {});
      if (this.profile) fs.rmSync(this.profile, { recursive: true, force: true });
      clearTimeout(watchdog);
    }
  }
}

// `--flag value` or `--flag=value` arguments into an object, by `names`
// (flag → key); exits 2 on anything else.
export function parseArgs(argv, names, usage) {
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    let [flag, value] = argv[i].split(/=(.*)/s, 2);
    if (!(flag in names)) {
      process.stderr.write(`unknown argument ${JSON.stringify(argv[i])}\n${usage}\n`);
      process.exit(2);
    }
    if (value === undefined) value = argv[++i];
    opts[names[flag]] = value;
  }
  return opts;
}
