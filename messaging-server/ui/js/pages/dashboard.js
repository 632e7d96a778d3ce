// Dashboard: totals per status, delivery %, failures by error code, opt-outs, inbound, and the
// chart of sends, deliveries and failures over the last hour, day or week. Refreshes every
// 5 s while a campaign runs, every 30 s otherwise.
import { get, query } from '../api.js';
import { h, replace } from '../dom.js';
import { card, count, errorBox, pageHeader, table, tiles, badge, link } from '../components.js';
import { lineChart } from '../chart.js';

const ORDER = ['pending', 'queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'undelivered', 'skipped', 'deferred'];

export async function render(main, _params, context) {
  let window = context.query.get('window') || 'day';
  let timer = null;
  let stopped = false;
  const choices = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Chart window' });
  const figures = h('div');
  const chart = h('div', {}, h('p', { class: 'muted', text: 'Loading…' }));
  const failures = h('div');
  const running = h('div');
  const updated = h('span', { class: 'muted' });
  for (const [value, text] of [['hour', 'Last hour'], ['day', 'Last day'], ['week', 'Last week']]) {
    const button = h('button', { type: 'button', text, 'aria-pressed': String(value === window), dataset: { window: value } });
    button.addEventListener('click', () => {
      window = value;
      for (const b of choices.children) b.setAttribute('aria-pressed', String(b.dataset.window === value));
      history.replaceState(null, '', '/ui/' + query({ window: value === 'day' ? '' : value }));
      refresh();
    });
    choices.append(button);
  }
  main.append(
    pageHeader('Dashboard', updated),
    figures,
    card(null, h('div', { class: 'page-header' }, h('h2', { text: 'Sends, deliveries and failures' }), choices), chart),
    h('div', { class: 'grid' }, card('Failures by error code', failures), card('Running campaigns', running)),
  );

  async function refresh() {
    clearTimeout(timer);
    let live = false;
    try {
      const [stats, series, campaigns] = await Promise.all([
        get('/stats'), get('/stats/timeseries' + query({ window })), get('/campaigns?limit=100'),
      ]);
      if (stopped) return;
      const by = stats.by_status;
      const inFlight = (by.pending || 0) + (by.queued || 0) + (by.sending || 0);
      replace(figures, tiles([
        ['messages', count(stats.messages)],
        ['delivered %', stats.delivery_percent === null ? '—' : stats.delivery_percent + ' %', 'good'],
        ['in flight', count(inFlight), inFlight ? 'info' : null],
        ['failed', count((by.failed || 0) + (by.undelivered || 0)), (by.failed || by.undelivered) ? 'bad' : null],
        ['skipped', count(by.skipped), by.skipped ? 'warn' : null],
        ['opted out users', count(stats.opted_out_users)],
        ['inbound', count(stats.inbound_messages)],
        ['inbound commands', count(stats.inbound_commands)],
      ]), h('div', { class: 'card' }, h('h2', { text: 'Messages per status' }), h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ORDER.map((s) => h('th', { scope: 'col', class: 'num' }, badge(s))))),
        h('tbody', {}, h('tr', {}, ORDER.map((s) => h('td', { class: 'num', text: count(by[s] || 0) }))))))));
      replace(chart, lineChart(series));
      const codes = Object.entries(stats.failures_by_error_code);
      replace(failures, table([['Error code', ([code]) => h('code', { text: code })], ['Messages', ([, n]) => count(n)]], codes, 'No failures.'));
      const active = campaigns.items.filter((c) => c.status === 'running' || c.status === 'scheduled');
      live = active.some((c) => c.status === 'running') || inFlight > 0;
      replace(running, table([['Campaign', (c) => link('/ui/campaigns/' + c.id, c.name)], ['Status', (c) => badge(c.status)]], active, 'No campaign is running or scheduled.'));
      updated.textContent = 'Updated ' + new Date().toLocaleTimeString() + (live ? ' · live' : '');
    } catch (error) {
      if (stopped) return;
      replace(figures, errorBox(error));
    }
    if (!stopped) timer = setTimeout(refresh, live ? 5000 : 30000);
  }
  await refresh();
  return () => { stopped = true; clearTimeout(timer); };
}
