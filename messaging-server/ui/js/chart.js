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
  const niceMax = niceCeiling(max);
  const x = (i) => left + (i * (width - left - right)) / Math.max(1, points.length - 1);
  const y = (v) => top + (height - top - bottom) * (1 - v / niceMax);
  const grid = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const value = Math.round(niceMax * f);
    return [svg('line', { class: 'axis', x1: left, x2: width - right, y1: y(value), y2: y(value) }),
      svg('text', { x: left - 6, y: y(value) + 4, 'text-anchor': 'end', text: value })];
  });
  const step = Math.max(1, Math.ceil(points.length / 6));
  const ticks = points.map((p, i) => (i % step === 0
    ? svg('text', { x: x(i), y: height - 8, 'text-anchor': 'middle', text: label(new Date(p.start), series.bucket_seconds) })
    : null));
  const lines = SERIES.map(([key, name]) => svg('polyline', {
    class: 'line s-' + key,
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

function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= value) return m * power;
  return 10 * power;
}
