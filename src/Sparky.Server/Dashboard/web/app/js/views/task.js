// One task: its spec, every attempt, its result and artifacts, its progress, cancel and retry, and a live tail of
// its output (stdout or stderr) that renders ANSI colours and, when a new attempt starts, moves on to its log.

import { api, headers, taskPath } from '../api.js';
import { h, fill, link, badge, progressBar } from '../dom.js';
import { bytes, command, duration, json, runtime, time } from '../format.js';
import { throttle } from '../live.js';
import { LogView } from '../logview.js';
import { shared } from '../state.js';
import { where } from './tasks.js';

const TAIL_BYTES = 256 * 1024;

export function mount(root, { path }) {
  const id = path[1];
  let task = null;

  const title = h('h1', { class: 'title' });
  const actions = h('div', { class: 'actions' });
  const message = h('p', { class: 'note', role: 'status' });
  const progress = h('div', { class: 'progress-row' });
  const facts = h('dl', { class: 'facts' });
  const attempts = h('div', { class: 'scroll' });
  const result = h('div');
  const artifacts = h('div');
  const logBox = h('pre', { class: 'log', tabIndex: 0, aria: { label: 'output' } });
  const logNote = h('span', { class: 'muted' });
  const streamButtons = ['stdout', 'stderr'].map(s => h('button', {
    type: 'button', class: 'chip', dataset: { stream: s }, aria: { pressed: s === 'stdout' },
    on: { click: () => tail.show(s, tail.attempt, tail.followLatest) },
  }, s));
  const attemptSelect = h('select', { aria: { label: 'attempt' }, on: { change: () => {
    const v = attemptSelect.value;
    tail.show(tail.stream, v === 'latest' ? null : Number(v), v === 'latest');
  } } });

  root.append(
    h('section', { class: 'panel' },
      h('div', { class: 'heading' }, title, actions), message, progress, facts),
    h('section', { class: 'panel' }, h('h2', {}, 'Attempts'), attempts),
    h('section', { class: 'panel' }, h('h2', {}, 'Output'),
      h('div', { class: 'toolbar' }, h('div', { class: 'chips', role: 'group', aria: { label: 'stream' } }, streamButtons), attemptSelect, logNote),
      logBox),
    h('section', { class: 'panel' }, h('h2', {}, 'Result'), result),
    h('section', { class: 'panel' }, h('h2', {}, 'Artifacts'), artifacts));

  const tail = new Tail(id, new LogView(logBox), logNote, () => task);

  async function load() {
    try {
      task = await api(taskPath(id));
    } catch (e) {
      fill(title, 'Task ', id);
      fill(message, h('span', { class: 'error' }, e.status === 404 ? `There is no task ${id}.` : e.message));
      return;
    }
    render();
    if (!tail.started) tail.show('stdout', null, true);
    tail.taskChanged();
  }

  function render() {
    const t = task;
    fill(title, badge(t.state), ' ', h('span', {}, t.name || t.id));
    renderActions();
    fill(progress, progressBar(t.progress));
    fill(facts,
      fact('id', t.id),
      fact('class', t.class),
      fact('command', t.command !== null && t.command !== undefined ? h('code', {}, command(t.command)) : null),
      t.payload ? fact('payload', h('pre', { class: 'json' }, json(t.payload))) : null,
      fact('submitted', time(t.submitted_at)),
      fact('started', time(t.started_at)),
      fact('finished', time(t.finished_at)),
      fact('runtime', t.started_at ? duration(runtime(t)) : '—'),
      fact('exit code', t.exit_code ?? '—'),
      t.signal ? fact('signal', t.signal) : null,
      t.reason ? fact('reason', t.reason) : null,
      t.error ? fact('error', t.error) : null,
      fact('attempts', `${t.attempts} (retries allowed: ${t.retries ?? 0})`),
      t.timeout_seconds ? fact('timeout', duration(t.timeout_seconds * 1000)) : null,
      t.after?.length ? fact('after', t.after.map((a, i) => [i ? ', ' : '', link(['task', a], a)])) : null,
      t.array_index !== null && t.array_index !== undefined ? fact('array index', t.array_index) : null,
      fact('where', where(t) || '—'),
      t.slurm ? fact('Slurm', `job ${t.slurm.job_id ?? '(not yet)'} · ${t.slurm.state ?? ''}${t.slurm.node ? ' on ' + t.slurm.node : ''}`) : null);

    const list = t.attempt_list ?? [];
    fill(attempts, list.length === 0 ? h('p', { class: 'muted' }, 'Not started yet.') : h('table', {},
      h('thead', {}, h('tr', {}, ['#', 'started', 'ended', 'took', 'outcome', 'exit', 'signal', 'host / worker', 'Slurm job', 'pid', 'CPU', 'peak memory', 'reason']
        .map(c => h('th', {}, c)))),
      h('tbody', {}, list.map(a => h('tr', {},
        h('td', {}, a.n), h('td', {}, time(a.started_at)), h('td', {}, time(a.ended_at)),
        h('td', { class: 'num' }, a.started_at ? duration((a.ended_at ? Date.parse(a.ended_at) : Date.now()) - Date.parse(a.started_at)) : ''),
        h('td', {}, a.outcome ? badge(a.outcome) : (a.ended_at ? '' : badge('running'))),
        h('td', { class: 'num' }, a.exit_code ?? ''), h('td', { class: 'num' }, a.signal ?? ''),
        h('td', {}, a.worker ?? a.host ?? ''), h('td', {}, a.slurm_job_id ?? ''), h('td', { class: 'num' }, a.pid ?? ''),
        h('td', { class: 'num' }, a.cpu_ms !== null && a.cpu_ms !== undefined ? duration(a.cpu_ms) : ''),
        h('td', { class: 'num' }, a.mem_peak_bytes !== null && a.mem_peak_bytes !== undefined ? bytes(a.mem_peak_bytes) : ''),
        h('td', {}, a.reason ?? ''))))));

    fill(result,
      t.result !== null && t.result !== undefined ? h('pre', { class: 'json' }, json(t.result))
        : h('p', { class: 'muted' }, t.state === 'succeeded' ? 'No result line (__DSPY_RESULT__:) in its output.' : 'None yet.'),
      t.result_error ? h('p', { class: 'error' }, t.result_error) : null);

    const a = t.artifacts;
    const outputs = a?.outputs ?? [];
    fill(artifacts, !a ? h('p', { class: 'muted' }, 'None declared.') : [
      h('p', { class: 'muted' }, a.state ?? '', a.reason ? ` · ${a.reason}` : ''),
      outputs.length ? h('div', { class: 'scroll' }, h('table', {},
        h('thead', {}, h('tr', {}, ['name', 'path', 'type', 'size', 'checksum'].map(c => h('th', {}, c)))),
        h('tbody', {}, outputs.map(o => h('tr', {},
          h('td', {}, o.name ?? ''), h('td', {}, h('code', {}, o.path ?? '')), h('td', {}, o.type ?? ''),
          h('td', { class: 'num' }, o.missing ? 'missing' : bytes(o.size ?? o.size_bytes)),
          h('td', { class: 'checksum' }, o.checksum ?? '')))))) : null,
    ]);

    const options = [h('option', { value: 'latest' }, 'latest attempt (follows retries)')];
    for (const at of list) options.push(h('option', { value: String(at.n) }, `attempt ${at.n}`));
    fill(attemptSelect, options);
    attemptSelect.value = tail.followLatest ? 'latest' : String(tail.attempt);
  }

  function renderActions() {
    const t = task;
    const active = t.state === 'queued' || t.state === 'running';
    // Keep the button that is there while its action stays the same: a refresh that replaced it
    // under the pointer would swallow the user's click (and detach it from a test's).
    const kind = shared.readOnly ? 'read-only' : active ? 'cancel' : 'retry';
    if (actions.dataset.kind === kind && !actions.querySelector('button:disabled')) return;
    actions.dataset.kind = kind;
    if (shared.readOnly) { fill(actions, h('span', { class: 'muted' }, 'read-only')); return; }
    fill(actions, active
      ? h('button', { type: 'button', class: 'danger', dataset: { action: 'cancel' }, on: { click: () => act('cancel') } }, 'Cancel')
      : h('button', { type: 'button', dataset: { action: 'retry' }, on: { click: () => act('retry') } }, 'Retry'));
  }

  async function act(what) {
    for (const b of actions.querySelectorAll('button')) b.disabled = true;
    try {
      await api(what === 'cancel' ? taskPath(id) : taskPath(id) + '/retry', { method: what === 'cancel' ? 'DELETE' : 'POST' });
      fill(message, what === 'cancel' ? 'Cancel sent.' : 'Queued again.');
    } catch (e) {
      fill(message, h('span', { class: 'error' }, e.message));
    }
    await load();
  }

  const refetch = throttle(load, 500);

  function event({ topic, body: b }) {
    if (b.id !== id) return;
    if (shared.paused) { shared.missed(); return; }
    if (topic === 'task.progress' && task) {
      task.progress = b.progress;
      fill(progress, progressBar(b.progress));
      return;
    }
    refetch();
  }

  const onStatus = () => { if (task && !shared.paused) renderActions(); };
  shared.addEventListener('status', onStatus);
  const onPause = () => tail.pause(shared.paused);
  shared.addEventListener('pause', onPause);
  load();
  return {
    refresh: () => { load(); tail.reconnect(); },
    event,
    unmount() { tail.stop(); refetch.cancel(); shared.removeEventListener('status', onStatus); shared.removeEventListener('pause', onPause); },
  };
}

/**
 * Follows one stream of a task's output. Following the latest attempt, it reads that attempt's log to its end and,
 * when a newer attempt starts, clears the view and follows that one. While paused, what arrives is kept and shown on
 * resume. After the daemon drops the stream (a restart) it reads the tail again.
 */
class Tail {
  constructor(id, view, noteEl, getTask) {
    this.id = id;
    this.view = view;
    this.noteEl = noteEl;
    this.getTask = getTask;
    this.stream = 'stdout';
    this.attempt = null;
    this.followLatest = true;
    this.started = false;
    this.abort = null;
    this.held = [];
    this.paused = shared.paused;
    this.generation = 0;
  }

  show(stream, attempt, followLatest) {
    this.started = true;
    this.stream = stream;
    this.followLatest = followLatest;
    const t = this.getTask();
    this.attempt = attempt ?? Math.max(1, t?.attempts ?? 1);
    for (const b of document.querySelectorAll('button[data-stream]')) b.setAttribute('aria-pressed', String(b.dataset.stream === stream));
    this.#open(true);
  }

  /** The task was read again: a newer attempt may have started. */
  taskChanged() {
    const t = this.getTask();
    if (this.followLatest && t && t.attempts > this.attempt && !this.reading) {
      this.attempt = t.attempts;
      this.#open(true);
    }
  }

  reconnect() { if (this.started && !this.reading) this.#open(true); }

  pause(paused) {
    this.paused = paused;
    if (!paused) { for (const c of this.held) this.view.writeBytes(c); this.held = []; this.#scroll(); }
  }

  stop() { this.generation++; this.abort?.abort(); }

  async #open(clear) {
    this.stop();
    const gen = this.generation;
    const ctl = new AbortController();
    this.abort = ctl;
    if (clear) { this.view.clear(); this.held = []; }
    const n = this.attempt;
    const t = this.getTask();
    if (t && t.attempts > 1) this.view.note(`— attempt ${n} of ${t.attempts} —`);
    fill(this.noteEl, `${this.stream} of attempt ${n}`);
    const url = `/api/v1/tasks/${encodeURIComponent(this.id)}/logs?stream=${this.stream}&attempt=${n}&follow=true&tail=${TAIL_BYTES}`;
    this.reading = true;
    let ended = false;
    try {
      const resp = await fetch(url, { headers: headers(), credentials: 'same-origin', signal: ctl.signal });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const reader = resp.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (gen !== this.generation) return;
        if (this.paused) this.held.push(value);
        else { this.view.writeBytes(value); this.#scroll(); }
      }
      ended = true;
    } catch (e) {
      if (e.name === 'AbortError' || gen !== this.generation) return;
    } finally {
      if (gen === this.generation) this.reading = false;
    }
    if (gen !== this.generation) return;
    if (!ended) { setTimeout(() => { if (gen === this.generation) this.#open(true); }, 1500); return; }
    // This attempt's log is over. Following the latest, go on with the next attempt once there is one.
    const latest = this.getTask();
    if (this.followLatest && latest && latest.attempts > n) { this.attempt = latest.attempts; this.#open(true); }
    else if (this.view.empty) this.view.note('(no output)');
  }

  #scroll() {
    const box = this.view.pre;
    // Stays at the bottom unless the reader scrolled up.
    if (box.scrollHeight - box.scrollTop - box.clientHeight < 80) box.scrollTop = box.scrollHeight;
  }
}

function fact(k, v) {
  return v === null || v === undefined ? null : [h('dt', {}, k), h('dd', {}, v)];
}
