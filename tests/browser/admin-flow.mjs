// The admin page in a real browser (headless Chromium, launched as
// lab-flow.mjs does, through flow-common.mjs).
//
//   node tests/browser/admin-flow.mjs --mode servers --base URL --admin NAME \
//       --new-user NAME --other NAME --go-dir DIR --screenshot PATH [--timeout-ms N]
//     The admin logs in, adds NEW from the admin page, starts NEW's server
//     from the table and waits for it to show running; then prints
//     {"event":"running"} and waits for DIR/running to exist (the caller
//     checks the real process meanwhile); then stops the server from the table and
//     waits for it to show stopped; starts it again and stops it with "Stop
//     all servers". Last, OTHER (not an admin) logs in and
//     gets a 403 for /hub/admin.
//
//   node tests/browser/admin-flow.mjs --mode approve --base URL --admin NAME \
//       --pending NAME --go-dir DIR --screenshot PATH [--timeout-ms N]
//     With the native authenticator: the admin page lists PENDING as
//     waiting; the admin follows its link to /hub/authorize and approves.
//     Then, on the admin page: creates a group, adds PENDING to it
//     (checkpoint "member-added"), removes it, deletes the group; makes
//     PENDING an admin, renames it (checkpoint "renamed") and deletes it.
//
// Passwords come from ADMIN_FLOW_ADMIN_PASSWORD and ADMIN_FLOW_OTHER_PASSWORD.
// Prints one JSON line at the end: {"ok":true,...} or {"ok":false,"step":...}.

import { Flow, StepError, parseArgs, pathOf } from './flow-common.mjs';

const USAGE = 'usage: node admin-flow.mjs --mode servers|approve --base URL --admin NAME ...';
const opts = parseArgs(
  process.argv.slice(2),
  {
    '--mode': 'mode',
    '--base': 'base',
    '--admin': 'admin',
    '--new-user': 'newUser',
    '--other': 'other',
    '--pending': 'pending',
    '--go-dir': 'goDir',
    '--screenshot': 'screenshot',
    '--timeout-ms': 'timeoutMs',
  },
  USAGE,
);
const timeoutMs = Number(opts.timeoutMs || 180000);
const base = new URL(opts.base);
const origin = base.origin;
const prefix = base.pathname.replace(/\/+$/, '');
const adminUrl = `${prefix}/hub/admin`;
const failShot = opts.screenshot.replace(/\.png$/, '') + '.failed.png';

function row(name) {
  return `#users-body tr[data-user="${name}"]`;
}

async function adminPageReady(flow, after) {
  // the script has rendered the table (again) from the API
  await flow.until('the admin script to render the table', async () =>
    flow.page.evaluate((n) => Number(document.body.dataset.adminReady || 0) > n, after),
  );
}

async function readyCount(flow) {
  return flow.page.evaluate(() => Number(document.body.dataset.adminReady || 0));
}

async function serverState(flow, user) {
  const cell = flow.page.locator(`${row(user)} .server-line[data-server=""] .state`);
  if (!(await cell.count())) return null;
  return (await cell.first().innerText()).trim();
}

async function status(flow) {
  return (await flow.page.locator('#admin-status').innerText()).trim();
}

async function servers(flow) {
  const page = flow.page;
  await flow.step('admin_login', () =>
    flow.login(origin, prefix, opts.admin, process.env.ADMIN_FLOW_ADMIN_PASSWORD, adminUrl),
  );
  await flow.step('admin_page', () => adminPageReady(flow, 0));

  await flow.step('add_user', async () => {
    const before = await readyCount(flow);
    await page.locator('#usernames').fill(opts.newUser, { timeout: flow.remaining() });
    await page.locator('#add-users-submit').click({ timeout: flow.remaining() });
    await adminPageReady(flow, before);
    await flow.until(`${opts.newUser} in the table`, async () => {
      if ((await page.locator(row(opts.newUser)).count()) > 0) return true;
      const s = await status(flow);
      if (s.includes(': 4') || s.includes(': 5')) throw new StepError(`adding failed: ${s}`);
      return false;
    });
  });

  await flow.step('start_server', async () => {
    await page.locator(`${row(opts.newUser)} button[data-action=start]`).click({ timeout: flow.remaining() });
    await flow.until(`${opts.newUser}'s server to show running`, async () => {
      const s = await status(flow);
      if (/: [45]\d\d /.test(s)) throw new StepError(`the start failed: ${s}`);
      return (await serverState(flow, opts.newUser)) === 'running';
    });
  });
  const url = await page.locator(`${row(opts.newUser)} a.open-server`).getAttribute('href');
  await flow.screenshot(opts.screenshot.replace(/\.png$/, '') + '-running.png');

  await flow.step('checked_by_caller', () => flow.checkpoint(opts.goDir, 'running', { url }));

  await flow.step('stop_server', async () => {
    await page.locator(`${row(opts.newUser)} button[data-action=stop]`).click({ timeout: flow.remaining() });
    await flow.until(`${opts.newUser}'s server to show stopped`, async () => {
      const s = await status(flow);
      if (/: [45]\d\d /.test(s)) throw new StepError(`the stop failed: ${s}`);
      return (await serverState(flow, opts.newUser)) === 'stopped';
    });
  });
  await flow.screenshot(opts.screenshot);

  // once more, stopped this time by "Stop all servers"
  await flow.step('stop_all', async () => {
    await page.locator(`${row(opts.newUser)} button[data-action=start]`).click({ timeout: flow.remaining() });
    await flow.until(`${opts.newUser}'s server to show running again`, async () => (await serverState(flow, opts.newUser)) === 'running');
    await page.locator('#stop-all').click({ timeout: flow.remaining() });
    await flow.until('every server to show stopped', async () => {
      const s = await status(flow);
      if (/: [45]\d\d /.test(s)) throw new StepError(`stopping all failed: ${s}`);
      return s === 'Stopped every server.' && (await serverState(flow, opts.newUser)) === 'stopped';
    });
  });

  const forbidden = await flow.step('other_refused', async () => {
    await flow.context.clearCookies();
    await flow.login(origin, prefix, opts.other, process.env.ADMIN_FLOW_OTHER_PASSWORD, `${prefix}/hub/home`);
    if (await page.locator('#admin-link').count()) throw new StepError('a non-admin sees the Admin link');
    const resp = await page.goto(`${origin}${adminUrl}`, { timeout: flow.remaining(), waitUntil: 'domcontentloaded' });
    return resp.status();
  });
  return { server_url: url, other_status: forbidden, final_url: page.url() };
}

async function approve(flow) {
  const page = flow.page;
  await flow.step('admin_login', () =>
    flow.login(origin, prefix, opts.admin, process.env.ADMIN_FLOW_ADMIN_PASSWORD, adminUrl),
  );
  await flow.step('admin_page', () => adminPageReady(flow, 0));
  const listed = await flow.step('waiting_listed', async () =>
    (await page.locator('#signups li.waiting').allInnerTexts()).map((t) => t.trim()),
  );
  if (!listed.includes(opts.pending)) throw new StepError(`${opts.pending} is not listed as waiting: ${JSON.stringify(listed)}`);
  await flow.step('authorize_page', async () => {
    await page.locator('#authorize-link').click({ timeout: flow.remaining() });
    await flow.until('/hub/authorize', async () => pathOf(page.url()) === `${prefix}/hub/authorize`);
  });
  await flow.step('approve', async () => {
    await page
      .locator(`tr[id="${opts.pending}"] button`, { hasText: 'Authorize' })
      .click({ timeout: flow.remaining() });
    await flow.until(`${opts.pending} to show authorized`, async () => (await page.locator(`tr[id="${opts.pending}"].authorized`).count()) > 0);
  });
  // back on the admin page: groups, and the admin flag, through the API
  await flow.step('groups', async () => {
    await page.goto(`${origin}${adminUrl}`, { timeout: flow.remaining(), waitUntil: 'domcontentloaded' });
    await adminPageReady(flow, 0);
    const group = 'jhtest-group';
    const item = `#group-list li[data-group="${group}"]`;
    await flow.until('the groups section', async () => (await page.locator('#new-group').count()) > 0);
    await page.locator('#new-group').fill(group, { timeout: flow.remaining() });
    await page.locator('#create-group').click({ timeout: flow.remaining() });
    await flow.until(`group ${group} listed`, async () => (await page.locator(item).count()) > 0);
    await page.locator(`${item} .new-member`).fill(opts.pending, { timeout: flow.remaining() });
    await page.locator(`${item} button[data-action=add-member]`).click({ timeout: flow.remaining() });
    await flow.until(`${opts.pending} in ${group}`, async () => (await page.locator(`${item} li[data-member="${opts.pending}"]`).count()) > 0);
    await flow.checkpoint(opts.goDir, 'member-added', { group });
    await page.locator(`${item} li[data-member="${opts.pending}"] button`).click({ timeout: flow.remaining() });
    await flow.until(`${opts.pending} out of ${group}`, async () => (await page.locator(`${item} li[data-member]`).count()) === 0);
    await page.locator(`${item} button[data-action=delete-group]`).click({ timeout: flow.remaining() });
    await flow.until(`group ${group} gone`, async () => (await page.locator(item).count()) === 0);
  });
  await flow.step('make_admin', async () => {
    const before = await readyCount(flow);
    await page.locator(`${row(opts.pending)} button[data-action=toggle-admin]`).click({ timeout: flow.remaining() });
    await adminPageReady(flow, before);
    await flow.until(`${opts.pending} marked admin`, async () =>
      (await page.locator(`${row(opts.pending)}[data-admin="true"]`).count()) > 0,
    );
  });
  const renamed = `${opts.pending}-renamed`;
  await flow.step('rename_and_delete', async () => {
    flow.promptAnswer = renamed;
    await page.locator(`${row(opts.pending)} button[data-action=rename]`).click({ timeout: flow.remaining() });
    await flow.until(`${renamed} in the table`, async () => (await page.locator(row(renamed)).count()) > 0);
    await flow.checkpoint(opts.goDir, 'renamed', { name: renamed });
    await page.locator(`${row(renamed)} button[data-action=delete]`).click({ timeout: flow.remaining() });
    await flow.until(`${renamed} gone from the table`, async () => (await page.locator(row(renamed)).count()) === 0);
  });
  await flow.screenshot(opts.screenshot);
  return { final_url: page.url(), status: await status(flow) };
}

const flow = new Flow('admin-flow', timeoutMs);
await flow.run(failShot, opts.mode === 'approve' ? approve : servers);
