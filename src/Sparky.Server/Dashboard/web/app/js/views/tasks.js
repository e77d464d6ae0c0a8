// The task table: one page at a time from GET /api/v1/tasks (newest first, paged by cursor: it never loads every
// task), filtered by several states at once, a class and a text search on name and command. It follows the daemon's
// events: a task that changes state changes here without a reload, unless the view is paused.

import { api, query } from '../api.js';
import { h, fill, link, badge, progressBar, emptyRow } from '../dom.js';
import { command, duration, runtime, time } from '../format.js';
import { throttle } from '../live.js';
import { shared } from '../state.js';

const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const SIZES = [25, 50, 100, 200];
const COLUMNS = 10;

export function mount(root, { params }) {
  const filter = {
    state: (params.get('state') ?? '').split(',').filter(s => STATES.includes(s)),
    class: params.get('class') ?? '',
    q: params.get('q') ?? '',
    limit: SIZES.includes(Number(params.get('limit'))) ? Number(params.get('limit')) : 50,
  };
  let cursors = [null];   // the cursor of each page gone through; the last one is this page's
  let nextCursor = null;
  let rows = new Map();   // id → {tr, task}
  let asked = 0;          // answers to older requests are dropped

  const chips = STATES.map(st => h('button', {
    type: 'button', class: 'chip', dataset: { state: st }, aria: { pressed: filter.state.includes(st) },
    on: { click: () => { toggle(filter.state, st); chips.forEach(c => c.setAttribute('aria-pressed', String(filter.state.includes(c.dataset.state)))); changed(); } },
  }, st));
  const classSelect = h('select', { name: 'class', aria: { label: 'class' }, on: { change: () => { filter.class = classSelect.value; changed(); } } });
  const search = h('input', {
    type: 'search', name: 'q', placeholder: 'Search name and command', value: filter.q, aria: { label: 'search' },
    on: { input: debounce(() => { filter.q = search.value.trim(); changed(); }, 300) },
  });
  const size = h('select', { name: 'limit', aria: { label: 'tasks per page' }, on: { change: () => { filter.limit = Number(size.value); changed(); } } },
    SIZES.map(n => h('option', { value: String(n), selected: n === filter.limit }, `${n} per page`)));
  const body = h('tbody');
  const note = h('p', { class: 'note', role: 'status' });
  const prev = h('button', { type: 'button', on: { click: () => { if (cursors.length > 1) { cursors.pop(); load(); } } } }, '← Newer');
  const next = h('button', { type: 'button', on: { click: () => { if (nextCursor !== null) { cursors.push(nextCursor); load(); } } } }, 'Older →');
  const pageNo = h('span', { class: 'muted' });

  root.append(h('section', { class: 'panel' },
    h('h1', {}, 'Tasks'),
    h('div', { class: 'toolbar' }, h('div', { class: 'chips', role: 'group', aria: { label: 'states' } }, chips), classSelect, search, size),
    note,
    h('div', { class: 'scroll' }, h('table', { class: 'tasks' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'State'), h('th', {}, 'Task'), h('th', { class: 'opt' }, 'Class'), h('th', {}, 'Progress'),
        h('th', { class: 'opt' }, 'Command'), h('th', { class: 'num opt' }, 'Tries'), h('th', { class: 'num opt' }, 'Exit'),
        h('th', { class: 'opt' }, 'Submitted'), h('th', { class: 'num wide' }, 'Runtime'), h('th', { class: 'opt' }, 'Where'))),
      body)),
    h('div', { class: 'pager' }, prev, pageNo, next)));

  function classes() {
    const names = shared.status?.classes.map(c => c.class) ?? [];
    if (filter.class && !names.includes(filter.class)) names.push(filter.class);
    fill(classSelect, h('option', { value: '' }, 'all classes'), names.map(n => h('option', { value: n, selected: n === filter.class }, n)));
  }

  function changed() {
    const q = query({ state: filter.state, class: filter.class, q: filter.q, limit: filter.limit === 50 ? null : filter.limit });
    history.replaceState(null, '', '#/tasks' + q); // linkable, without a new route
    cursors = [null];
    load();
  }

  async function load() {
    const mine = ++asked;
    const url = '/api/v1/tasks' + query({
      state: filter.state, class: filter.class, q: filter.q, limit: filter.limit, order: 'desc', cursor: cursors.at(-1),
    });
    try {
      const page = await api(url);
      if (mine !== asked) return;
      nextCursor = page.next_cursor ?? null;
      render(page.tasks);
      fill(note);
    } catch (e) {
      if (mine !== asked) return;
      fill(note, h('span', { class: 'error' }, e.message));
    }
  }

  function render(tasks) {
    rows = new Map();
    fill(body, tasks.length ? tasks.map(t => {
      const tr = row(t);
      rows.set(t.id, { tr, task: t });
      return tr;
    }) : emptyRow(COLUMNS, filtered() ? 'No task matches.' : 'No tasks yet.'));
    prev.disabled = cursors.length === 1;
    next.disabled = nextCursor === null;
    fill(pageNo, `page ${cursors.length}`);
  }

  const filtered = () => filter.state.length || filter.class || filter.q;

  function row(t) {
    return h('tr', { dataset: { id: t.id, state: t.state } },
      h('td', {}, badge(t.state)),
      h('td', { class: 'task' }, link(['task', t.id], t.name || t.id, { class: 'name' }), t.name ? h('span', { class: 'id' }, t.id) : null),
      h('td', { class: 'opt' }, t.class),
      h('td', { class: 'progress-cell' }, progressBar(t.progress)),
      h('td', { class: 'opt cmd', title: command(t.command) }, command(t.command ?? (t.payload ? JSON.stringify(t.payload) : ''))),
      h('td', { class: 'num opt' }, t.attempts),
      h('td', { class: 'num opt exit' }, t.exit_code ?? (t.signal ? `sig ${t.signal}` : '')),
      h('td', { class: 'opt', title: t.submitted_at ?? '' }, time(t.submitted_at)),
      h('td', { class: 'num wide runtime' }, t.started_at ? duration(runtime(t)) : ''),
      h('td', { class: 'opt where' }, where(t)));
  }

  const refetch = throttle(load, 1000);

  function event({ topic, body: b }) {
    if (!topic.startsWith('task.')) return;
    if (shared.paused) { shared.missed(); return; }
    const shown = rows.get(b.id);
    if (topic === 'task.progress') {
      // In place: a progress report changes no row's place in the table.
      if (shown) { shown.task.progress = b.progress; fill(shown.tr.querySelector('.progress-cell'), progressBar(b.progress)); }
      return;
    }
    refetch();
  }

  // Running tasks' runtimes move on between events.
  const ticker = setInterval(() => {
    if (shared.paused) return;
    for (const { tr, task } of rows.values())
      if (task.state === 'running' && task.started_at) tr.querySelector('.runtime').textContent = duration(runtime(task));
  }, 1000);

  const onStatus = () => { if (classSelect.options.length <= 1) classes(); };
  shared.addEventListener('status', onStatus);
  classes();
  load();
  return {
    refresh: load,
    event,
    unmount() { clearInterval(ticker); refetch.cancel(); shared.removeEventListener('status', onStatus); asked++; },
  };
}

/** Where the task runs or ran: its Slurm job and node, or its host (a worker's name for a worker's task). */
export function where(t) {
  if (t.slurm?.job_id) return `slurm ${t.slurm.job_id}${t.slurm.node ? ' on ' + t.slurm.node : ''}`;
  return t.host ?? '';
}

function toggle(list, value) {
  const i = list.indexOf(value);
  if (i >= 0) list.splice(i, 1); else list.push(value);
}

function debounce(fn, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}
