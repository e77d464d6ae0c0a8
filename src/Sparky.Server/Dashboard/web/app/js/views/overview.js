// The overview: per class the tasks in each state, its concurrency limit and running tasks over the last minutes
// (sampled by the page every few seconds), the throughput, and the daemon's version, mode and uptime.

import { h, fill } from '../dom.js';
import { count, duration, rate, shortVersion, time } from '../format.js';
import { samples, throughput } from '../samples.js';
import { shared } from '../state.js';
import { lineChart } from '../chart.js';

const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

export function mount(root) {
  const totals = h('div', { class: 'totals' });
  const cards = h('div', { class: 'cards' });
  const daemon = h('dl', { class: 'facts' });
  root.append(
    h('section', { class: 'panel' }, h('h1', {}, 'Overview'), totals),
    cards,
    h('section', { class: 'panel' }, h('h2', {}, 'Daemon'), daemon));

  const charts = new Map(); // class → {card, chart, counts, limit}

  function cardFor(c) {
    let entry = charts.get(c.class);
    if (entry) return entry;
    const counts = h('div', { class: 'counts' });
    const limit = h('p', { class: 'muted limit' });
    const plot = h('div', { class: 'chart' });
    const card = h('section', { class: 'panel card', dataset: { class: c.class } },
      h('h2', {}, h('a', { href: '#/tasks?class=' + encodeURIComponent(c.class) }, c.class)),
      counts, limit, plot,
      h('p', { class: 'legend muted' }, h('span', { class: 'key limit' }), 'limit ', h('span', { class: 'key running' }), 'running'));
    cards.append(card);
    entry = { card, counts, limit, chart: lineChart(plot, ['limit', 'running']) };
    charts.set(c.class, entry);
    return entry;
  }

  function render() {
    const s = shared.status;
    if (!s) return;
    const tp = throughput();
    fill(totals,
      STATES.map(st => h('a', { class: 'stat', href: '#/tasks?state=' + st },
        h('span', { class: 'n' }, count(s.totals[st])), h('span', { class: 'badge', dataset: { state: st } }, st))),
      h('span', { class: 'stat' }, h('span', { class: 'n' }, rate(tp)), h('span', { class: 'muted' }, 'tasks/s, last minute')));
    for (const c of s.classes) {
      const { counts, limit, chart } = cardFor(c);
      fill(counts, STATES.map(st => h('a', {
        class: 'count', href: `#/tasks?state=${st}&class=${encodeURIComponent(c.class)}`, title: `${c.class}: ${st}`,
      }, h('span', { class: 'n' }, count(c[st])), h('span', { class: 'what' }, st))));
      fill(limit, c.limit === undefined
        ? 'no longer configured'
        // A worker class's limit is its workers' slots: no range, no limiter of its own.
        : c.runs_on === 'workers' || c.runs_on === 'pilots'
          ? [h('strong', {}, `limit ${c.limit}`), ' · its workers\' slots · runs on ', h('a', { href: '#/workers' }, c.runs_on)]
          : [h('strong', {}, `limit ${c.limit}`), ` of ${c.min_slots}–${c.max_slots} · ${c.limiter} · runs on ${c.runs_on}`]);
      const mine = samples.map(x => ({ t: x.t, c: x.status.classes.find(k => k.class === c.class) })).filter(x => x.c);
      chart.set(mine.map(x => x.t / 1000), [mine.map(x => x.c.limit ?? null), mine.map(x => x.c.running)]);
    }
    fill(daemon,
      fact('version', shortVersion(s.version)), fact('mode', s.mode), fact('uptime', duration(Date.parse(s.now) - Date.parse(s.started_at))),
      fact('started', time(s.started_at)), fact('dashboard', s.dashboard),
      fact('max concurrency', s.max_concurrency ? String(s.max_concurrency) : 'no cap beyond the classes'));
  }

  const onStatus = () => { if (!shared.paused) render(); };
  shared.addEventListener('status', onStatus);
  render();
  return {
    refresh: render,
    unmount() {
      shared.removeEventListener('status', onStatus);
      for (const { chart } of charts.values()) chart.destroy();
    },
  };
}

function fact(k, v) {
  return [h('dt', {}, k), h('dd', {}, v)];
}
