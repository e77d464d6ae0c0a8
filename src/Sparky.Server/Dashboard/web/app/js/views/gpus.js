// GPUs: one card per device from GET /api/v1/gpus (read by the daemon every 2 s), with its utilisation and memory
// over the minutes this view has been open, its temperature, and the running tasks that hold it with their share.

import { api, taskPath } from '../api.js';
import { h, fill, link } from '../dom.js';
import { bytes } from '../format.js';
import { lineChart } from '../chart.js';
import { shared } from '../state.js';

const KEEP = 300; // samples: ten minutes at one every 2 s
const names = new Map(); // task id → its name, asked once per holding task (a name never changes)

export function mount(root) {
  const head = h('p', { class: 'muted' });
  const cards = h('div', { class: 'cards' });
  root.append(h('section', { class: 'panel' }, h('h1', {}, 'GPUs'), head), cards);
  const devices = new Map(); // uuid → {card, body, chart, history}
  let timer = null;

  async function load() {
    let g;
    try {
      g = await api('/api/v1/gpus');
    } catch (e) {
      fill(head, h('span', { class: 'error' }, e.message));
      return;
    }
    if (shared.paused) return;
    fill(head, g.gpus.length ? `${g.gpus.length} GPU(s), read through ${g.source}` : `No GPU found (source: ${g.source}).`,
      ...(g.problems ?? []).map(p => h('span', { class: 'error block' }, p)),
      g.sample_error ? h('span', { class: 'error block' }, g.sample_error) : null);
    const now = Date.now() / 1000;
    for (const gpu of g.gpus) {
      const d = device(gpu);
      d.history.push([now, gpu.utilization !== null ? gpu.utilization * 100 : null,
        gpu.memory_total_bytes ? (gpu.memory_used_bytes / gpu.memory_total_bytes) * 100 : null]);
      if (d.history.length > KEEP) d.history.shift();
      fill(d.body,
        meter('utilisation', gpu.utilization, gpu.utilization !== null ? `${Math.round(gpu.utilization * 100)} %` : '—'),
        meter('memory', gpu.memory_total_bytes ? gpu.memory_used_bytes / gpu.memory_total_bytes : null,
          `${bytes(gpu.memory_used_bytes)} of ${bytes(gpu.memory_total_bytes)}${gpu.unified_memory ? ' (unified)' : ''}`),
        h('div', { class: 'meter' }, h('span', { class: 'label' }, 'temperature'),
          h('span', { class: 'temperature' }, gpu.temperature_c !== null && gpu.temperature_c !== undefined ? `${gpu.temperature_c} °C` : '—')),
        holders(gpu),
        h('p', { class: 'muted' }, gpu.pci_bus_id ?? '', ' · ', gpu.uuid));
      d.chart.set(d.history.map(x => x[0]), [d.history.map(x => x[1]), d.history.map(x => x[2])]);
    }
  }

  function device(gpu) {
    let d = devices.get(gpu.uuid);
    if (d) return d;
    const body = h('div');
    const plot = h('div', { class: 'chart' });
    const card = h('section', { class: 'panel card', dataset: { uuid: gpu.uuid } }, h('h2', {}, `GPU ${gpu.index} · ${gpu.name ?? ''}`), body, plot,
      h('p', { class: 'legend muted' }, h('span', { class: 'key limit' }), 'utilisation % ', h('span', { class: 'key running' }), 'memory %'));
    cards.append(card);
    d = { card, body, chart: lineChart(plot, ['utilisation %', 'memory %'], { max: 100 }), history: [] };
    devices.set(gpu.uuid, d);
    return d;
  }

  const tick = async () => { await load(); timer = setTimeout(tick, 2000); };
  tick();
  return {
    refresh: load,
    unmount() { clearTimeout(timer); for (const d of devices.values()) d.chart.destroy(); },
  };
}

/** The running tasks that hold the GPU: a share of its memory each, or the whole device. */
function holders(gpu) {
  const tasks = gpu.tasks ?? [];
  const MiB = 1024 * 1024;
  return h('div', { class: 'holders' }, h('h3', {}, tasks.length ? `Held by ${tasks.length} task(s)` : 'Held by no task'),
    tasks.length ? h('ul', { class: 'plain' }, tasks.map(t => {
      const share = t.gpu_memory_mb ?? null;
      const ratio = share !== null && gpu.memory_total_bytes ? (share * MiB) / gpu.memory_total_bytes : 1;
      const bar = h('span', { class: 'bar' }, h('span', { class: 'fill' }));
      bar.firstChild.style.width = (Math.min(1, ratio) * 100).toFixed(1) + '%';
      const a = link(['task', t.id], t.id, { class: 'name', title: t.id });
      nameInto(a, t.id);
      return h('li', { dataset: { id: t.id } }, a,
        h('span', { class: 'share' }, share !== null ? `${bytes(share * MiB)} share` : 'whole GPU'), bar);
    })) : null);
}

/** Puts the task's name in `el` as text, asking the daemon for it once; its id until then, or where it has none. */
function nameInto(el, id) {
  if (names.has(id)) { el.textContent = names.get(id) ?? id; return; }
  if (names.size > 1000) names.clear();
  names.set(id, null);
  api(taskPath(id)).then(t => {
    names.set(id, t.name || null);
    if (t.name) el.textContent = t.name;
  }, () => names.delete(id));
}

function meter(label, ratio, words) {
  const bar = h('span', { class: 'bar' }, h('span', { class: 'fill' }));
  if (ratio !== null && ratio !== undefined) bar.firstChild.style.width = (Math.min(1, ratio) * 100).toFixed(1) + '%';
  return h('div', { class: 'meter' }, h('span', { class: 'label' }, label), bar, h('span', { class: 'words' }, words));
}
