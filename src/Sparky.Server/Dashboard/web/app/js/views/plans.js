// Plans: the list (GET /api/v1/plans), and one plan's phases → workstreams → tasks with each gate's checks and their
// output (GET /api/v1/plans/NAME), kept live by the plan and task events.

import { api } from '../api.js';
import { h, fill, link, badge } from '../dom.js';
import { duration, time } from '../format.js';
import { follow } from '../live.js';

export function mount(root, { path }) {
  return path[0] === 'plan' ? one(root, path[1]) : list(root);
}

function list(root) {
  const body = h('tbody');
  const note = h('p', { class: 'note' });
  root.append(h('section', { class: 'panel' }, h('h1', {}, 'Plans'), note, h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, ['plan', 'status', 'phase', 'waiting for', 'updated'].map(c => h('th', {}, c)))), body))));

  let running = false;

  async function load() {
    try {
      const { plans } = await api('/api/v1/plans');
      running = plans.some(p => p.status === 'running');
      fill(note, plans.length ? null : h('span', { class: 'muted' }, 'No plans yet: sparky plan run FILE starts one.'));
      fill(body, plans.map(p => h('tr', {},
        h('td', {}, link(['plan', p.name], p.name)), h('td', {}, badge(p.status)), h('td', {}, p.current_phase ?? ''),
        h('td', {}, p.waiting ?? ''), h('td', {}, time(p.updated_at)))));
    } catch (e) { fill(note, h('span', { class: 'error' }, e.message)); }
  }
  // A plan's own status (succeeded, stopped) changes without an event of its own: read again while one runs.
  return follow(load, topic => topic.startsWith('plan.') || topic === 'gate.result', { every: 3000, when: () => running });
}

function one(root, name) {
  const title = h('h1', {});
  const note = h('p', { class: 'note' });
  const phases = h('div', { class: 'phases' });
  root.append(h('section', { class: 'panel' }, title, note), phases);
  let ids = new Set();
  let running = false;

  async function load() {
    let r;
    try { r = await api('/api/v1/plans/' + encodeURIComponent(name)); } catch (e) {
      fill(title, 'Plan ', name);
      fill(note, h('span', { class: 'error' }, e.status === 404 ? `There is no plan ${name}.` : e.message));
      return;
    }
    ids = new Set();
    running = r.status === 'running';
    fill(title, badge(r.status), ' ', r.name);
    fill(note, r.reason ? h('span', { class: 'error' }, r.reason) : null, r.waiting ? h('span', { class: 'muted block' }, r.waiting) : null,
      r.path ? h('span', { class: 'muted block' }, r.path) : null);
    fill(phases, r.phases.map(p => h('section', { class: 'panel phase', dataset: { status: p.status } },
      h('h2', {}, badge(p.status), ' ', p.name),
      p.blocked_reason ? h('p', { class: 'muted' }, p.blocked_reason) : null,
      h('div', { class: 'workstreams' }, p.workstreams.map(w => h('div', { class: 'workstream' },
        h('h3', {}, badge(w.status), ' ', w.name, w.attempt > 1 ? h('span', { class: 'muted' }, ` · run ${w.attempt}`) : null),
        w.reason ? h('p', { class: 'muted' }, w.reason) : null,
        h('ul', { class: 'plain' }, w.tasks.map(t => taskLine(t)))))),
      gate(p.gate))));
  }

  function taskLine(t) {
    const elements = t.elements ?? (t.id ? [t] : []);
    for (const e of elements) ids.add(e.id);
    return h('li', {}, badge(t.state ?? 'not_submitted'), ' ', t.id && !t.elements ? link(['task', t.id], t.name) : t.name,
      t.duration_seconds !== null && t.duration_seconds !== undefined ? h('span', { class: 'muted' }, ' · ' + duration(t.duration_seconds * 1000)) : null,
      t.elements ? h('span', { class: 'muted' }, ` · ${t.elements.length} elements`) : null);
  }

  // A workstream's tasks are not known before they are submitted: read again while the plan runs.
  return follow(load, (topic, b) => topic.startsWith('plan.') || topic === 'gate.result' || (topic.startsWith('task.') && ids.has(b.id)),
    { every: 3000, when: () => running });
}

function gate(g) {
  if (!g || g.checks.length === 0) return h('p', { class: 'muted' }, 'No gate.');
  return h('div', { class: 'gate' }, h('h3', {}, 'Gate ', badge(g.status)), g.reason ? h('p', { class: 'muted' }, g.reason) : null,
    h('ul', { class: 'plain' }, g.checks.map(c => h('li', {},
      badge(c.passed === true ? 'passed' : c.passed === false ? 'failed' : 'not_run'), ' ', h('code', {}, c.check),
      c.output ? h('pre', { class: 'output' }, c.output) : null))));
}
