// A line chart of the time series in hand-written SVG: one line per series, a few gridlines,
// time labels; a <title> per point so a pointer shows the numbers.
import { h, svg } from './dom.js';

const SERIES = [['sent', 'Sent'], ['delivered', 'Delivered'], ['read', 'Read'], ['failed', 'Failed']];

function label(date, bucketSeconds) {
  return bucketSeconds >= 3600
    ? date.toLocaleDateString(undefined, { weekday: 'short', hour: '2-digit' })
    : date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** The chart of `series` (`{bucket_seconds, points}`). */
export function lineChart(series) {
  const points = series.points;
  const width = 900, height = 240, left = 44, right = 12, top = 12, bottom = 28;
  const max = Math.max(1, ...points.flatMap((p) => SERIES.map(([key]) => p[key])));
  // Whole-number gridlines, at most four intervals: 1, 2 or 5 times a power of ten apart.
  const gridStep = niceStep(max / 4);
  const niceMax = Math.ceil(max / gridStep) * gridStep;
  const x = (i) => left + (i * (width - left - right)) / Math.max(1, points.length - 1);
  const y = (v) => top + (height - top - bottom) * (1 - v / niceMax);
  const gridValues = [];
  for (let value = 0; value <= niceMax; value += gridStep) gridValues.push(value);
  const grid = gridValues.map((value) => {
    return [svg('line', { class: 'axis', x1: left, x2: width - right, y1: y(value), y2: y(value) }),
      svg('text', { x: left - 6, y: y(value) + 4, 'text-anchor': 'end', text: value })];
  });
  const step = Math.max(1, Math.ceil(points.length / 6));
  const ticks = points.map((p, i) => (i % step === 0
    ? svg('text', { x: x(i), y: height - 8, 'text-anchor': 'middle', text: label(new Date(p.start), series.bucket_seconds) })
    : null));
  // Drawn widest first, so a series that runs along another (every sent message delivered)
  // still shows as a line of its own around it.
  const lines = SERIES.map(([key, name], index) => svg('polyline', {
    class: 'line s-' + key,
    'stroke-width': 2 + 2 * (SERIES.length - 1 - index),
    points: points.map((p, i) => `${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' '),
  }, svg('title', { text: name })));
  const hover = points.map((p, i) => svg('rect', {
    x: x(i) - (width - left - right) / points.length / 2, y: top, width: (width - left - right) / points.length, height: height - top - bottom, fill: 'transparent',
  }, svg('title', { text: `${new Date(p.start).toLocaleString()}\n` + SERIES.map(([key, name]) => `${name}: ${p[key]}`).join('\n') })));
  const total = points.reduce((sum, p) => sum + p.sent + p.delivered + p.read + p.failed, 0);
  return h('figure', { class: 'chart-figure' },
    svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `Sends, deliveries, reads and failures; ${total} status changes in the window` }, grid, ticks, lines, hover),
    h('figcaption', { class: 'legend' }, SERIES.map(([key, name]) => h('span', {}, h('i', { class: 's-' + key }), name))));
}

function niceStep(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (m * power >= value) return m * power;
  return 10 * power;
}
