// Terminal output as styled text. SGR sequences (ESC [ … m: bold, dim, italic, underline, the 16 colours, 256
// colours and 24-bit colours, foreground and background) become styles; every other escape or control sequence is
// dropped. Pure: no DOM here. Output arrives in chunks, so a sequence cut at a chunk's end is kept for the next one.

const ESC = '\x1b';

function plain() {
  return { bold: false, dim: false, italic: false, underline: false, fg: null, bg: null };
}

/** A 256-colour index as a colour: 0–15 stay palette indices (the page's theme colours them), the rest are RGB. */
function color256(n) {
  if (n < 16) return n;
  if (n >= 232) { const v = 8 + (n - 232) * 10; return `rgb(${v},${v},${v})`; }
  const i = n - 16, steps = [0, 95, 135, 175, 215, 255];
  return `rgb(${steps[Math.floor(i / 36)]},${steps[Math.floor(i / 6) % 6]},${steps[i % 6]})`;
}

/** Applies one SGR parameter list to a style; returns the new style. */
export function applySgr(style, params) {
  const s = { ...style };
  const p = params.length === 0 ? [0] : params;
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === 0) Object.assign(s, plain());
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 22) { s.bold = false; s.dim = false; }
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c === 39) s.fg = null;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 49) s.bg = null;
    else if (c === 38 || c === 48) {
      const key = c === 38 ? 'fg' : 'bg';
      if (p[i + 1] === 5 && i + 2 < p.length) { s[key] = color256(clamp(p[i + 2])); i += 2; }
      else if (p[i + 1] === 2 && i + 4 < p.length) { s[key] = `rgb(${clamp(p[i + 2])},${clamp(p[i + 3])},${clamp(p[i + 4])})`; i += 4; }
      else break; // malformed: the rest of the list means nothing
    }
    // Anything else (blink, inverse, fonts…) is ignored.
  }
  return s;
}

const clamp = n => Math.max(0, Math.min(255, n | 0));

/**
 * A parser for one stream of output. feed(text) returns what the text means, in order:
 *   {text, style}  a run of printable text in one style
 *   {newline: true}  end of line
 *   {cr: true}  a carriage return not followed by a line feed: the line is written again from its start (progress bars)
 */
export function createAnsiParser() {
  let style = plain();
  let carry = '';
  let pendingCr = false;

  function feed(chunk) {
    const out = [];
    let text = carry + chunk;
    carry = '';
    let run = '';
    const flush = () => { if (run) { out.push({ text: run, style }); run = ''; } };
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (pendingCr) {
        pendingCr = false;
        if (ch !== '\n') { flush(); out.push({ cr: true }); }
      }
      if (ch === '\n') { flush(); out.push({ newline: true }); continue; }
      if (ch === '\r') {
        if (i === text.length - 1) { pendingCr = true; continue; }
        if (text[i + 1] !== '\n') { flush(); out.push({ cr: true }); }
        continue;
      }
      if (ch === '\t') { run += ch; continue; }
      if (ch === ESC) {
        const end = sequenceEnd(text, i);
        if (end === -1) { carry = text.slice(i); break; } // cut off: finish it with the next chunk
        if (text[i + 1] === '[' && text[end] === 'm') {
          flush();
          const body = text.slice(i + 2, end);
          if (/^[\d;:]*$/.test(body)) style = applySgr(style, body === '' ? [] : body.split(/[;:]/).map(x => (x === '' ? 0 : Number(x))));
        }
        i = end;
        continue;
      }
      const code = ch.charCodeAt(0);
      if (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0)) continue; // other control characters
      run += ch;
    }
    flush();
    // A long run of text with an unfinished sequence would otherwise be held for ever: give up on it past 256 chars.
    if (carry.length > 256) carry = '';
    return out;
  }

  return { feed };
}

/** Where the escape sequence that starts at i ends (its last index), or -1 where the text ends first. */
function sequenceEnd(text, i) {
  const next = text[i + 1];
  if (next === undefined) return -1;
  if (next === '[') {
    // CSI: parameter and intermediate bytes, then one final byte in @–~.
    for (let j = i + 2; j < text.length; j++) {
      const c = text.charCodeAt(j);
      if (c >= 0x40 && c <= 0x7e) return j;
      if (c < 0x20 || c > 0x3f) return j - 1; // not a CSI after all: drop what came of it
    }
    return -1;
  }
  if (next === ']' || next === 'P' || next === '_' || next === '^') {
    // OSC, DCS, APC, PM: up to BEL or ESC \ (string terminator).
    for (let j = i + 2; j < text.length; j++) {
      if (text[j] === '\x07') return j;
      if (text[j] === ESC) { if (j + 1 >= text.length) return -1; if (text[j + 1] === '\\') return j + 1; }
    }
    return -1;
  }
  // ESC and one more character (ESC ( B, ESC =, ESC 7 …): both dropped. ESC ( B has one more.
  if (next === '(' || next === ')' || next === '#') return i + 2 < text.length ? i + 2 : -1;
  return i + 1;
}

/** The CSS classes and inline colours of a style, for the renderer. */
export function styleOf(s) {
  const classes = [];
  let color = null, background = null;
  if (s.bold) classes.push('b');
  if (s.dim) classes.push('dim');
  if (s.italic) classes.push('i');
  if (s.underline) classes.push('u');
  if (typeof s.fg === 'number') classes.push('f' + s.fg); else if (s.fg) color = s.fg;
  if (typeof s.bg === 'number') classes.push('g' + s.bg); else if (s.bg) background = s.bg;
  return { classes, color, background };
}
