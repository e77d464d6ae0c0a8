// Workers: where work runs away from the daemon, from GET /api/v1/workers. The connected workers (their host, classes,
// credits, the tasks each runs now and how long since each was heard from), the pilot allocations Sparky asked Slurm
// for, and the Slurm jobs of running tasks. Read again on the worker and task events and every 2 s (heartbeat ages
// move without an event); a paused view does neither. What a worker says of itself is shown as text.

import { api } from '../api.js';
import { h, fill, link, badge, emptyRow } from '../dom.js';
import { ago, duration, time } from '../format.js';
import { follow } from '../live.js';

export function mount(root) {
  const head = h('p', { class: 'note' });
  const workers = h('tbody');
  const pilots = h('tbody');
  const jobs = h('tbody');
  const pilotsNote = h('p', { class: 'note muted' });
  const jobsNote = h('p', { class: 'note muted' });
  const pilotsTable = h('table', { class: 'pilots' },
    h('thead', {}, h('tr', {}, ['Pilot', 'Slurm job', 'State', 'Node', 'Workers', 'Submitted'].map(c => h('th', {}, c)))), pilots);
  const jobsTable = h('table', { class: 'slurm' },
    h('thead', {}, h('tr', {}, ['Task', 'Class', 'Slurm job', 'State', 'Node', 'Submitted'].map(c => h('th', {}, c)))), jobs);
  root.append(
    h('section', { class: 'panel' }, h('h1', {}, 'Workers'), head, h('div', { class: 'scroll' }, h('table', { class: 'workers' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Worker'), h('th', { class: 'opt' }, 'Classes'), h('th', { class: 'num' }, 'Credits'),
        h('th', { class: 'num opt' }, 'GPUs'), h('th', {}, 'Running'), h('th', {}, 'Heartbeat'), h('th', { class: 'opt' }, 'Connected'))),
      workers))),
    h('section', { class: 'panel' }, h('h2', {}, 'Pilot allocations'), pilotsNote, h('div', { class: 'scroll' }, pilotsTable)),
    h('section', { class: 'panel' }, h('h2', {}, 'Slurm jobs'), jobsNote, h('div', { class: 'scroll' }, jobsTable)));

  async function load() {
    let r;
    try { r = await api('/api/v1/workers'); } catch (e) {
      fill(head, h('span', { class: 'error' }, e.message));
      return;
    }
    const now = Date.now();
    const classes = [...new Set([...r.worker_classes, ...r.pilot_classes])];
    fill(head,
      classes.length ? `Classes that run on workers: ${classes.join(', ')}.` : 'No class runs on workers here (worker_classes and pilot_classes are empty).',
      ` Heartbeat every ${duration(r.heartbeat_seconds * 1000)}; lost after ${duration(r.timeout_seconds * 1000)} of silence.`,
      r.awaiting_worker ? h('strong', { class: 'block' }, `${r.awaiting_worker} task(s) waiting for a worker's credit.`) : null);
    fill(workers, r.workers.length ? r.workers.map(w => workerRow(w, r.timeout_seconds, now))
      : emptyRow(7, classes.length ? 'No worker connected: sparky worker --connect tcp://HOST:PORT starts one.' : 'No worker connected.'));
    // An empty table is only its note.
    pilotsTable.hidden = r.pilots.length === 0;
    fill(pilotsNote, r.pilots.length ? null
      : r.pilot_classes.length ? 'No pilot allocation now: one is asked for while pilot tasks wait.' : 'No pilot class (pilot_classes is empty).');
    fill(pilots, r.pilots.map(p => h('tr', { dataset: { pilot: p.id } },
      h('td', { class: 'id' }, p.id), h('td', {}, p.job_id ?? '—'),
      h('td', {}, badge(p.connected ? 'connected' : (p.state ?? 'unknown').toLowerCase())),
      h('td', {}, p.node ?? '—'), h('td', {}, p.workers.length ? p.workers.join(', ') : '—'),
      h('td', {}, p.submitted_at ? ago(p.submitted_at, now) : 'before this daemon started'))));
    jobsTable.hidden = r.slurm_jobs.length === 0;
    fill(jobsNote, r.slurm_jobs.length ? null : 'No task runs on Slurm now.');
    fill(jobs, r.slurm_jobs.map(j => h('tr', { dataset: { id: j.id } },
      h('td', { class: 'task' }, taskLink(j)), h('td', {}, j.class), h('td', {}, j.job_id ?? '—'),
      h('td', {}, badge(j.state.toLowerCase())), h('td', {}, j.node ?? '—'), h('td', {}, time(j.started_at)))));
  }

  return follow(load, topic => topic.startsWith('worker.') || topic === 'task.started' || topic === 'task.finished',
    { every: 2000 });
}

function workerRow(w, timeout, now) {
  const silent = w.last_seen_seconds_ago;
  // Late: more than half of worker_timeout without a word; past all of it the worker is about to be lost.
  const late = silent > timeout / 2;
  return h('tr', { dataset: { worker: w.name } },
    h('td', { class: 'task' },
      h('span', { class: 'name' }, w.name, w.draining ? h('span', { class: 'badge', dataset: { state: 'draining' } }, 'draining') : null),
      h('span', { class: 'id' }, w.host, ` · connection ${w.connection}`),
      w.pilot ? h('span', { class: 'id' }, 'pilot ', w.pilot) : null),
    h('td', { class: 'opt' }, w.classes.join(', ')),
    h('td', { class: 'num', title: 'tasks given to it out of its slots (+ prefetch); free: asked for and not given yet' },
      h('span', { class: 'credits' }, `${w.credits_in_use} / ${w.slots + w.prefetch}`),
      h('span', { class: 'id' }, `${w.credits_free} free`)),
    h('td', { class: 'num opt' }, w.gpus ? `${w.gpus - w.gpus_free} / ${w.gpus}` : '—'),
    h('td', { class: 'running' }, w.tasks.length ? h('ul', { class: 'plain' }, w.tasks.map(t => h('li', {},
      taskLink(t), h('span', { class: 'id' }, `${t.class} · attempt ${t.attempt} · ${duration(now - Date.parse(t.started_at))}`))))
      : h('span', { class: 'muted' }, 'idle')),
    h('td', { class: late ? 'late' : '' }, silent < 1 ? 'just now' : `${duration(silent * 1000)} ago`),
    h('td', { class: 'opt' }, time(w.connected_at)));
}

/** A task's name (or id) linking to its page, its id under it. */
function taskLink(t) {
  return [link(['task', t.id], t.name ?? t.id, { class: 'name' }), t.name ? h('span', { class: 'id' }, t.id) : null];
}
