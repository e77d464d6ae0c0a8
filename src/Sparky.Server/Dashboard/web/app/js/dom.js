// Building the page. Everything a task controls (its name, command, output, result, progress message) reaches the
// page through h() as text nodes or attribute values, never as markup: nothing here parses HTML.

/**
 * h('td', {class: 'num', title: t.name}, 'text', childNode, [more, children]) → an element.
 * props: class, text, on: {event: handler}, dataset: {...}, and any other key as a property (href, type, value, disabled…).
 * Children: strings and numbers become text nodes; null, undefined and false are skipped; arrays are flattened.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'aria') for (const [a, v] of Object.entries(value)) el.setAttribute(`aria-${a}`, String(v));
    else el[key] = value;
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A link to one of the page's own views; each part of the path is encoded, so an id or a name stays one segment. */
export function link(route, text, props = {}) {
  return h('a', { ...props, href: '#/' + route.map(encodeURIComponent).join('/') }, text);
}

/** A state as a coloured word: queued, running, succeeded, failed, cancelled (and plan words). */
export function badge(state) {
  return h('span', { class: 'badge', dataset: { state: String(state ?? 'unknown') } }, state ?? '—');
}

/** A progress bar with its words: "37 / 100 · epoch 5"; null where there is no progress. */
export function progressBar(p) {
  if (!p) return null;
  const known = typeof p.done === 'number' && typeof p.total === 'number' && p.total > 0;
  const ratio = known ? Math.min(1, Math.max(0, p.done / p.total)) : null;
  const bar = h('span', { class: 'bar' + (known ? '' : ' indeterminate') }, h('span', { class: 'fill' }));
  // The width is set through the CSSOM, which the Content-Security-Policy allows (no style attribute in markup).
  if (known) bar.firstChild.style.width = (ratio * 100).toFixed(1) + '%';
  const words = [];
  if (known) words.push(`${p.done} / ${p.total}`);
  else if (typeof p.done === 'number') words.push(String(p.done));
  if (p.message) words.push(p.message);
  return h('span', { class: 'progress', title: words.join(' · ') }, bar, h('span', { class: 'words' }, words.join(' · ')));
}

export function emptyRow(cols, text) {
  return h('tr', { class: 'empty' }, h('td', { colSpan: cols }, text));
}
