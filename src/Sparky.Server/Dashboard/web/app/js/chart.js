// Small time-series charts, drawn by uPlot (a pinned npm package, embedded in the daemon; see
// Dashboard/web/package.json). The library is loaded the first time a chart is shown.

const dark = window.matchMedia('(prefers-color-scheme: dark)');
let uPlotModule = null;
// The time axis spans at least a minute, so a page opened a moment ago shows a short line, not a stretched one.
const MIN_SPAN_S = 60;

// Its stylesheet is added with it: a daemon built without npm has neither, and says so where the chart would be.
function load() {
  uPlotModule ??= import('../vendor/uPlot.esm.js').then(m => {
    const css = document.createElement('link');
    css.rel = 'stylesheet';
    css.href = '/assets/vendor/uPlot.min.css';
    document.head.append(css);
    return m.default;
  });
  return uPlotModule;
}

function theme() {
  const css = getComputedStyle(document.documentElement);
  const v = name => css.getPropertyValue(name).trim();
  return { text: v('--muted'), grid: v('--grid'), series: [v('--series-1'), v('--series-2'), v('--series-3')] };
}

/**
 * A chart of one or more series against time (x in seconds) in `el`, as wide as `el`.
 * set(xs, [ys…]) gives it new data; destroy() removes it. Colours follow the page's light or dark theme.
 * opts.max: the y axis's fixed top (such as 100 for a percentage); otherwise it fits the data.
 */
export function lineChart(el, names, opts = {}) {
  let plot = null, data = [[], ...names.map(() => [])], gone = false;

  async function build() {
    let uPlot;
    try { uPlot = await load(); }
    catch {
      el.textContent = 'No charts in this build: it was built without npm, which restores the chart library.';
      return;
    }
    if (gone) return;
    plot?.destroy();
    const t = theme();
    const axis = { stroke: t.text, grid: { stroke: t.grid, width: 1 }, ticks: { stroke: t.grid, width: 1 }, size: 40 };
    plot = new uPlot({
      width: Math.max(200, el.clientWidth),
      height: opts.height ?? 120,
      legend: { show: false },
      cursor: { show: true, points: { show: false }, drag: { x: false, y: false } },
      scales: { x: { time: true, range: (u, min, max) => [Math.min(min ?? max, max - MIN_SPAN_S), max] }, y: { range: (u, min, max) => [0, opts.max ?? Math.max(1, Math.ceil(max * 1.15))] } },
      axes: [{ ...axis, size: 28 }, { ...axis }],
      series: [{}, ...names.map((label, i) => ({
        label,
        stroke: t.series[i % t.series.length],
        width: 2,
        paths: i === 0 ? uPlot.paths.stepped({ align: 1 }) : undefined,
        fill: i === 1 ? t.series[1] + '33' : undefined,
        points: { show: false },
      }))],
    }, data, el);
  }

  const resize = new ResizeObserver(() => plot?.setSize({ width: Math.max(200, el.clientWidth), height: opts.height ?? 120 }));
  resize.observe(el);
  const rebuild = () => build();
  dark.addEventListener('change', rebuild);
  build();

  return {
    set(xs, ys) {
      data = [xs, ...ys];
      plot?.setData(data);
    },
    destroy() {
      gone = true;
      resize.disconnect();
      dark.removeEventListener('change', rebuild);
      plot?.destroy();
    },
  };
}
