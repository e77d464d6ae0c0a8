// Numbers, times and sizes as people read them.

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60), rs = Math.floor(s % 60);
  if (m < 60) return `${m}m ${String(rs).padStart(2, '0')}s`;
  const hr = Math.floor(m / 60), rm = m % 60;
  if (hr < 48) return `${hr}h ${String(rm).padStart(2, '0')}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

/** How long a task has run: to its end, or to now while it runs. */
export function runtime(t, now = Date.now()) {
  if (!t.started_at) return null;
  const end = t.finished_at ? Date.parse(t.finished_at) : now;
  return end - Date.parse(t.started_at);
}

export function time(iso) {
  if (!iso) return '—';
  const d = new Date(typeof iso === 'number' ? iso : Date.parse(iso));
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  const hms = d.toLocaleTimeString([], { hour12: false });
  return sameDay ? hms : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${hms}`;
}

export function ago(iso, now = Date.now()) {
  if (!iso) return '—';
  const t = typeof iso === 'number' ? iso : Date.parse(iso);
  return duration(Math.max(0, now - t)) + ' ago';
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i === 0 || v >= 100 ? 0 : 1)} ${units[i]}`;
}

export function count(n) {
  return n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US');
}

export function rate(perSecond) {
  if (perSecond === null || perSecond === undefined) return '—';
  return perSecond >= 10 ? perSecond.toFixed(0) : perSecond.toFixed(perSecond >= 1 ? 1 : 2);
}

/** A command as one line: an argv with each word that needs it quoted, or the shell string as it is. */
export function command(cmd) {
  if (cmd === null || cmd === undefined) return '';
  if (typeof cmd === 'string') return cmd;
  return cmd.map(w => /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`).join(' ');
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

/** The daemon's version with its commit shortened: 0.1.0+9724f65355376ede… → 0.1.0+9724f65. */
export function shortVersion(v) {
  return String(v).replace(/\+([0-9a-f]{7})[0-9a-f]+$/, '+$1');
}
