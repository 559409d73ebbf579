// The admin page's script (served by the hub from inside its binary).
// The page works without it; with it, the page drives the hub's REST API
// with the browser's login cookie and the page's XSRF token in the
// X-XSRFToken header, and adds per-user actions and groups.
(function () {
  'use strict';
  const root = document.getElementById('users');
  if (!root || !window.fetch) return;
  const XSRF = root.dataset.xsrf;
  const ME = root.dataset.me;
  const PAGINATED = 'application/jupyterhub-pagination+json';
  const view = {
    sort: root.dataset.sort || 'id',
    offset: Number(root.dataset.offset) || 0,
    limit: Number(root.dataset.limit) || 50,
    nameFilter: (document.getElementById('name_filter') || {}).value || '',
  };
  const statusLine = document.getElementById('admin-status');
  let refreshTimer = null;

  function say(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? 'error' : '';
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') node.textContent = v;
      else if (k.startsWith('data-')) node.setAttribute(k, v);
      else if (k === 'class') node.className = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function enc(name) {
    return encodeURIComponent(name);
  }

  async function api(method, path, body, headers) {
    const init = {
      method,
      credentials: 'same-origin',
      headers: Object.assign({ 'X-XSRFToken': XSRF, Accept: 'application/json' }, headers || {}),
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const resp = await fetch('/hub/api' + path, init);
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!resp.ok) {
      const why = (data && data.message) || resp.statusText;
      const error = new Error(`${method} ${path}: ${resp.status} ${why}`);
      error.status = resp.status;
      throw error;
    }
    return data;
  }

  function serverPath(user, server) {
    return '/hub/api/users/' + enc(user) + (server ? '/servers/' + enc(server) : '/server');
  }

  function stateOf(model) {
    if (!model) return 'stopped';
    if (model.pending === 'spawn') return 'starting';
    if (model.pending) return 'stopping';
    return model.ready ? 'running' : 'stopped';
  }

  function serverLine(user, name, model) {
    const state = stateOf(model);
    const line = el('div', { class: 'server-line', 'data-server': name });
    if (name) line.append(el('span', { class: 'server-name', text: name + ': ' }));
    line.append(el('span', { class: 'state state-' + state, text: state }), ' ');
    if (state === 'running') {
      line.append(
        el('code', { class: 'url', text: model.url }),
        ' ',
        el('a', { class: 'open-server', href: model.url, target: '_blank', text: 'Open' }),
        ' ',
        el('button', { type: 'button', class: 'stop-server', 'data-action': 'stop', 'data-server': name, text: 'Stop' }),
      );
    } else if (state === 'stopped') {
      line.append(el('button', { type: 'button', class: 'start-server', 'data-action': 'start', 'data-server': name, text: 'Start' }));
    } else {
      line.append(el('span', { class: 'pending', text: state + '...' }));
    }
    return line;
  }

  function userRow(u) {
    const servers = u.servers || {};
    const cell = el('td', { class: 'servers' });
    cell.append(serverLine(u.name, '', servers['']));
    for (const name of Object.keys(servers).sort()) {
      if (name) cell.append(serverLine(u.name, name, servers[name]));
    }
    const actions = el(
      'td',
      { class: 'actions' },
      el('button', { type: 'button', 'data-action': 'toggle-admin', text: u.admin ? 'Remove admin' : 'Make admin' }),
      ' ',
      el('button', { type: 'button', 'data-action': 'rename', text: 'Rename' }),
      ' ',
      u.name === ME ? null : el('button', { type: 'button', 'data-action': 'delete', text: 'Delete' }),
    );
    return el(
      'tr',
      { 'data-user': u.name, 'data-admin': String(!!u.admin) },
      el('td', { class: 'name', text: u.name }),
      el('td', { class: 'admin-flag', text: u.admin ? 'admin' : '' }),
      cell,
      el('td', { class: 'last-activity', text: u.last_activity || 'never' }),
      actions,
    );
  }

  function usersQuery() {
    const q = new URLSearchParams({ offset: view.offset, limit: view.limit, sort: view.sort });
    if (view.nameFilter) q.set('name_filter', view.nameFilter);
    return q;
  }

  function pageQuery() {
    const q = usersQuery();
    if (view.sort === 'id') q.delete('sort');
    return q;
  }

  async function loadUsers() {
    const data = await api('GET', '/users?' + usersQuery(), undefined, { Accept: PAGINATED });
    const body = document.getElementById('users-body');
    body.replaceChildren(...data.items.map(userRow));
    const p = data._pagination;
    const info = document.getElementById('page-info');
    const last = p.offset + data.items.length;
    info.textContent = p.total === 0 ? 'No users.' : `Users ${p.offset + 1}–${last} of ${p.total}`;
    const pager = info.parentNode;
    for (const id of ['prev-page', 'next-page']) {
      const old = document.getElementById(id);
      if (old) old.remove();
    }
    if (p.offset > 0) pager.append(el('a', { id: 'prev-page', href: '#', 'data-offset': Math.max(0, p.offset - p.limit), text: 'Previous' }));
    if (p.next) pager.append(' ', el('a', { id: 'next-page', href: '#', 'data-offset': p.next.offset, text: 'Next' }));
    for (const [id, column] of [['sort-name', 'name'], ['sort-last-activity', 'last_activity']]) {
      const a = document.getElementById(id);
      const label = column === 'name' ? 'User' : 'Last activity';
      a.textContent = label + (view.sort === column ? ' ▲' : view.sort === '-' + column ? ' ▼' : '');
    }
    history.replaceState(null, '', '/hub/admin?' + pageQuery());
    document.body.dataset.adminReady = String(Number(document.body.dataset.adminReady || 0) + 1);
    // while a server starts or stops, look again soon
    const busy = data.items.some((u) => Object.values(u.servers || {}).some((s) => s.pending));
    clearTimeout(refreshTimer);
    if (busy) refreshTimer = setTimeout(() => refresh(), 1000);
  }

  async function refresh() {
    try {
      await loadUsers();
    } catch (e) {
      say(e.message, true);
    }
  }

  async function act(what, body) {
    try {
      await body();
      say(what);
    } catch (e) {
      say(e.message, true);
    }
    await refresh();
  }

  document.getElementById('users-body').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    event.preventDefault();
    const row = button.closest('tr[data-user]');
    const user = row.dataset.user;
    const server = button.dataset.server || '';
    const label = server ? `${user}/${server}` : user;
    switch (button.dataset.action) {
      case 'start':
        act(`Started ${label}'s server.`, async () => {
          await fetchServer('POST', user, server);
        });
        break;
      case 'stop':
        act(`Stopped ${label}'s server.`, async () => {
          await fetchServer('DELETE', user, server);
        });
        break;
      case 'toggle-admin': {
        const admin = row.dataset.admin !== 'true';
        act(`${user} is ${admin ? 'now' : 'no longer'} an admin.`, () => api('PATCH', '/users/' + enc(user), { admin }));
        break;
      }
      case 'rename': {
        const name = window.prompt(`New name for ${user}:`, user);
        if (name && name !== user) act(`Renamed ${user} to ${name}.`, () => api('PATCH', '/users/' + enc(user), { name }));
        break;
      }
      case 'delete':
        if (window.confirm(`Delete ${user}?`)) act(`Deleted ${user}.`, () => api('DELETE', '/users/' + enc(user)));
        break;
    }
  });

  // start and stop answer 202 while under way; the table polls
  async function fetchServer(method, user, server) {
    const path = serverPath(user, server).slice('/hub/api'.length);
    return api(method, path, method === 'POST' ? {} : undefined);
  }

  root.addEventListener('click', (event) => {
    const a = event.target.closest('a#prev-page, a#next-page, a#sort-name, a#sort-last-activity');
    if (!a) return;
    event.preventDefault();
    if (a.dataset.offset !== undefined) {
      view.offset = Number(a.dataset.offset);
    } else {
      const column = a.id === 'sort-name' ? 'name' : 'last_activity';
      view.sort = view.sort === column ? '-' + column : column;
      view.offset = 0;
    }
    refresh();
  });

  document.getElementById('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    view.nameFilter = document.getElementById('name_filter').value.trim();
    view.offset = 0;
    refresh();
  });

  document.getElementById('add-users-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const usernames = document
      .getElementById('usernames')
      .value.split(/[\s,]+/)
      .filter((n) => n);
    const admin = document.getElementById('add-admin').checked;
    if (!usernames.length) return;
    act(`Added ${usernames.join(', ')}.`, async () => {
      await api('POST', '/users', { usernames, admin });
      document.getElementById('usernames').value = '';
    });
  });

  document.getElementById('stop-all-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (!window.confirm('Stop every server?')) return;
    act('Stopped every server.', async () => {
      // every page of users with a server, then stop them all
      const active = [];
      let offset = 0;
      for (;;) {
        const data = await api('GET', `/users?state=active&offset=${offset}`, undefined, { Accept: PAGINATED });
        active.push(...data.items);
        if (!data._pagination.next) break;
        offset = data._pagination.next.offset;
      }
      const stops = [];
      for (const u of active) {
        for (const name of Object.keys(u.servers || {})) stops.push(fetchServer('DELETE', u.name, name));
      }
      await Promise.all(stops);
    });
  });

  // groups
  const groupsBody = document.getElementById('groups-body');

  function groupItem(g) {
    const members = el('ul', { class: 'members' });
    for (const m of g.users || []) {
      members.append(
        el('li', { 'data-member': m }, m + ' ', el('button', { type: 'button', 'data-action': 'remove-member', 'data-member': m, text: 'Remove' })),
      );
    }
    const input = el('input', { type: 'text', class: 'new-member', 'aria-label': `Add a member to ${g.name}`, placeholder: 'username' });
    return el(
      'li',
      { 'data-group': g.name },
      el('strong', { class: 'group-name', text: g.name }),
      ' ',
      el('button', { type: 'button', 'data-action': 'delete-group', text: 'Delete group' }),
      members,
      input,
      ' ',
      el('button', { type: 'button', 'data-action': 'add-member', text: 'Add member' }),
    );
  }

  async function loadGroups() {
    const data = await api('GET', '/groups?limit=200', undefined, { Accept: PAGINATED });
    const list = el('ul', { id: 'group-list' }, ...data.items.map(groupItem));
    const name = el('input', { type: 'text', id: 'new-group', 'aria-label': 'New group name', placeholder: 'group name' });
    const create = el('button', { type: 'button', id: 'create-group', 'data-action': 'create-group', text: 'Create group' });
    groupsBody.replaceChildren(data.items.length ? list : el('p', { text: 'No groups.' }), name, ' ', create);
  }

  async function groupAct(what, body) {
    try {
      await body();
      say(what);
    } catch (e) {
      say(e.message, true);
    }
    try {
      await loadGroups();
    } catch (e) {
      say(e.message, true);
    }
  }

  groupsBody.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const item = button.closest('li[data-group]');
    const group = item ? item.dataset.group : '';
    const path = '/groups/' + enc(group);
    switch (button.dataset.action) {
      case 'create-group': {
        const name = document.getElementById('new-group').value.trim();
        if (name) groupAct(`Created group ${name}.`, () => api('POST', '/groups/' + enc(name), {}));
        break;
      }
      case 'delete-group':
        if (window.confirm(`Delete group ${group}?`)) groupAct(`Deleted group ${group}.`, () => api('DELETE', path));
        break;
      case 'add-member': {
        const users = item.querySelector('.new-member').value.split(/[\s,]+/).filter((n) => n);
        if (users.length) groupAct(`Added ${users.join(', ')} to ${group}.`, () => api('POST', path + '/users', { users }));
        break;
      }
      case 'remove-member': {
        const member = button.dataset.member;
        groupAct(`Removed ${member} from ${group}.`, () => api('DELETE', path + '/users', { users: [member] }));
        break;
      }
    }
  });

  refresh();
  loadGroups().catch((e) => say(e.message, true));
})();
