// One campaign: what it is, its preview (recipients, samples, skip reasons), launch, pause,
// resume and cancel with a confirmation, the live monitor of its counts per status with the
// reasons messages were skipped and the problem that paused it, and its messages, each with
// its timeline of status changes and decisions.
import { del, get, post, query } from '../api.js';
import { navigate } from '../router.js';
import { h, replace } from '../dom.js';
import { badge, card, confirm, count, errorBox, notice, pageHeader, pager, pretty, table, tiles, timeCell } from '../components.js';

const ACTIONS = {
  draft: ['launch'], scheduled: ['launch', 'pause', 'cancel'], running: ['pause', 'cancel'], paused: ['resume', 'cancel'],
};
const WORDS = {
  launch: ['Launch', 'Launch this campaign? Messages go out to every recipient it resolves (an event campaign starts listening).', false],
  pause: ['Pause', 'Pause this campaign? Nothing more is sent until it is resumed.', false],
  resume: ['Resume', 'Resume this campaign? Sending goes on where it stopped.', false],
  cancel: ['Cancel campaign', 'Cancel this campaign for good? Messages not yet sent are never sent.', true],
};
const FINISHED = ['sent', 'delivered', 'read', 'failed', 'undelivered', 'skipped'];
const SEGMENTS = [['delivered', '#16a34a'], ['read', '#0d9488'], ['sent', '#2563eb'], ['failed', '#dc2626'], ['undelivered', '#b91c1c'], ['skipped', '#ca8a04'], ['deferred', '#f59e0b']];

export async function render(main, [id]) {
  const path = '/campaigns/' + encodeURIComponent(id);
  let stopped = false;
  let timer = null;
  const header = h('div');
  const facts = h('div');
  const monitor = h('div', { id: 'monitor' });
  const previewSlot = h('div', {}, h('button', { type: 'button', text: 'Preview recipients and messages', on: { click: () => preview() } }));
  const messages = h('div');
  const timeline = h('div', { id: 'timeline' });
  const actionError = h('div');
  main.append(header, actionError, h('div', { class: 'split' }, card('Campaign', facts), card('Monitor', monitor)), card('Preview', previewSlot), card('Messages', messages, timeline));

  let campaign;
  async function load() {
    campaign = await get(path);
    const actions = (ACTIONS[campaign.status] || []).map((action) => h('button', {
      type: 'button', class: action === 'cancel' ? 'danger' : action === 'launch' ? 'primary' : null, text: WORDS[action][0], dataset: { action },
      on: { click: () => act(action) },
    }));
    const editable = campaign.status === 'draft' || campaign.status === 'paused' || campaign.status === 'scheduled';
    replace(header, pageHeader(campaign.name, badge(campaign.status), ...actions,
      editable ? h('a', { class: 'button', href: `/ui/campaigns/${id}/edit`, text: 'Edit' }) : null,
      campaign.status === 'draft' ? h('button', { type: 'button', text: 'Delete', on: { click: remove } }) : null));
    const [template, segment] = await Promise.all([
      get('/templates/' + encodeURIComponent(campaign.template_id)).catch(() => null),
      campaign.segment_id ? get('/segments/' + encodeURIComponent(campaign.segment_id)).catch(() => null) : null,
    ]);
    replace(facts, h('dl', { class: 'facts' },
      h('dt', { text: 'Template' }), h('dd', {}, template ? h('a', { href: '/ui/templates/' + template.id, text: template.name }) : campaign.template_id),
      h('dt', { text: 'Topic' }), h('dd', { text: campaign.topic || 'any (no topic)' }),
      h('dt', { text: 'Segment' }), h('dd', {}, segment ? h('a', { href: '/ui/segments/' + segment.id, text: segment.name }) : 'none'),
      h('dt', { text: 'Trigger' }), h('dd', { text: campaign.trigger.type === 'event' ? 'event “' + campaign.trigger.event + '”' : 'manual' }),
      h('dt', { text: 'Schedule' }), h('dd', {}, campaign.schedule.start_at ? timeCell(campaign.schedule.start_at) : 'when launched', campaign.schedule.end_at ? [' until ', timeCell(campaign.schedule.end_at)] : ''),
      h('dt', { text: 'Rate' }), h('dd', { text: campaign.rate_limit_per_second ? campaign.rate_limit_per_second + ' per second' : 'the sender\'s ceiling' }),
      h('dt', { text: 'Quiet hours' }), h('dd', { text: campaign.quiet_hours ? `${campaign.quiet_hours.start}–${campaign.quiet_hours.end} (recipient's time)` : 'none' }),
      h('dt', { text: 'Created' }), h('dd', {}, timeCell(campaign.created_at))));
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const before = campaign && campaign.status;
      const [fresh, stats] = await Promise.all([get(path), get(path + '/stats')]);
      if (stopped) return;
      if (fresh.status !== before) await load();
      campaign = fresh;
      drawMonitor(stats);
      const inFlight = ['pending', 'queued', 'sending', 'deferred'].reduce((n, s) => n + (stats.by_status[s] || 0), 0);
      const live = campaign.status === 'running' || inFlight > 0 || stats.by_status.sent > 0;
      if (live) loadMessages.reload();
      timer = setTimeout(refresh, live ? 2000 : 15000);
    } catch (error) {
      if (!stopped) { replace(monitor, errorBox(error)); timer = setTimeout(refresh, 10000); }
    }
  }

  function drawMonitor(stats) {
    const by = stats.by_status;
    const total = stats.messages;
    const done = FINISHED.reduce((n, s) => n + (by[s] || 0), 0);
    const bar = h('div', { class: 'stacked', role: 'img', 'aria-label': `${done} of ${total} messages finished` },
      SEGMENTS.filter(([s]) => by[s]).map(([s, colour]) => { const span = h('span', { title: `${s}: ${by[s]}` }); span.style.width = (100 * by[s] / total) + '%'; span.style.background = colour; return span; }));
    replace(monitor,
      campaign.problem ? h('div', { class: 'problem', role: 'alert' }, h('strong', { text: 'Paused by itself: ' }), campaign.problem) : null,
      h('p', { class: 'progress-text' }, total ? `${count(done)} of ${count(total)} messages finished (${Math.round(100 * done / total)} %)` : (campaign.status === 'draft' ? 'Not launched yet.' : 'No messages yet.'),
        campaign.status === 'completed' ? ' · completed' : ''),
      total ? bar : null,
      tiles([
        ['queued', count((by.pending || 0) + (by.queued || 0) + (by.sending || 0)), 'info'],
        ['sent', count(by.sent), 'info'],
        ['delivered', count((by.delivered || 0) + (by.read || 0)), 'good'],
        ['read', count(by.read), 'good'],
        ['failed', count((by.failed || 0) + (by.undelivered || 0)), (by.failed || by.undelivered) ? 'bad' : null],
        ['skipped', count(by.skipped), by.skipped ? 'warn' : null],
        ['deferred', count(by.deferred), by.deferred ? 'warn' : null],
        ['delivered %', stats.delivery_percent === null ? '—' : stats.delivery_percent + ' %'],
      ]),
      stats.skipped_by_step.length ? [h('h3', { text: 'Why messages were skipped' }), table([
        ['Step', (s) => h('code', { text: s.step })], ['Messages', (s) => count(s.count)], ['Reason', (s) => s.reason],
      ], stats.skipped_by_step)] : null,
      Object.keys(stats.failures_by_error_code).length ? [h('h3', { text: 'Failures by error code' }), table([
        ['Code', ([c]) => h('code', { text: c })], ['Messages', ([, n]) => count(n)],
      ], Object.entries(stats.failures_by_error_code))] : null);
  }

  async function act(action) {
    const [title, message, danger] = WORDS[action];
    if (!(await confirm(title + '?', message, title, danger))) return;
    actionError.replaceChildren();
    try {
      const answer = await post(`${path}/${action}`);
      if (action === 'launch' && answer.fanned_out !== null && answer.fanned_out !== undefined) notice(`Launched: ${count(answer.fanned_out)} messages written to the outbox.`);
      await load();
      refresh();
    } catch (error) {
      replace(actionError, errorBox(error));
    }
  }

  async function remove() {
    if (!(await confirm('Delete campaign?', 'Delete this draft campaign? This cannot be undone.', 'Delete', true))) return;
    try { await del(path); navigate('/ui/campaigns'); } catch (error) { replace(actionError, errorBox(error)); }
  }

  async function preview() {
    replace(previewSlot, h('p', { class: 'muted', text: 'Rendering…' }));
    try {
      const p = await get(path + '/preview?sample=10');
      replace(previewSlot,
        tiles([['recipients', count(p.recipients)], ['opted in', count(p.opted_in), 'good'], ['would be skipped (opted out)', count(p.recipients - p.opted_in), p.recipients - p.opted_in ? 'warn' : null]]),
        p.event ? h('p', { class: 'muted' }, 'Rendered with the latest event it listens for, recorded ', timeCell(p.event.received_at), '.') : null,
        table([
          ['Recipient', (r) => h('a', { href: '/ui/users/' + encodeURIComponent(r.user), text: r.user })],
          ['Message', (r) => (r.body === null ? '—' : h('div', { class: 'preview-bubble', text: r.body }))],
          ['Sent as', (r) => r.send_as || '—'],
          ['Skip reason', (r) => r.skip_reason ? h('span', { class: 'error-text', text: r.skip_reason }) : '—'],
        ], p.sample, 'No recipients: check the topic and segment.'),
        h('div', { class: 'actions' }, h('button', { type: 'button', text: 'Preview again', on: { click: () => preview() } })));
    } catch (error) {
      replace(previewSlot, errorBox(error));
    }
  }

  const list = h('div');
  const loadMessages = pager(async (cursor) => get(path + '/messages' + query({ limit: 20, cursor })).catch((error) => { replace(list, errorBox(error)); return { items: [], next_cursor: null }; }),
    (items) => replace(list, table([
      ['Recipient', (m) => h('a', { href: '/ui/users/' + encodeURIComponent(m.user), text: m.user })],
      ['Status', (m) => badge(m.status)],
      ['Body', (m) => m.body],
      ['Error', (m) => m.error_code || '—'],
      ['Updated', (m) => timeCell(m.updated_at)],
      ['', (m) => h('button', { type: 'button', text: 'Timeline', on: { click: () => showTimeline(timeline, m.id) } })],
    ], items, 'No messages yet.')));
  messages.append(list, loadMessages.element);

  try {
    await load();
  } catch (error) {
    replace(main, errorBox(error));
    return;
  }
  await loadMessages.reload();
  refresh();
  return () => { stopped = true; clearTimeout(timer); };
}

/** A message's timeline: every status change and decision, in time order. */
export async function showTimeline(slot, id) {
  try {
    const m = await get('/messages/' + encodeURIComponent(id));
    const entries = [
      ...(m.history || []).map((c) => ({ at: c.at, node: h('span', {}, badge(c.status)) })),
      ...(m.decisions || []).map((d) => ({ at: d.at, node: h('span', {}, h('code', { text: d.step }), ' → ', badge(d.outcome), ' ', d.reason) })),
    ].sort((a, b) => a.at.localeCompare(b.at));
    replace(slot, h('h3', { text: 'Timeline of the message to ' + m.user }),
      h('ol', { class: 'timeline' }, entries.map((e) => h('li', {}, timeCell(e.at), ' ', e.node))),
      m.provider_sid ? h('p', { class: 'muted' }, 'Provider SID ', h('code', { text: m.provider_sid })) : null,
      h('details', {}, h('summary', { text: 'The message as stored' }), h('pre', { text: pretty(m) })));
    slot.scrollIntoView({ block: 'nearest' });
  } catch (error) {
    replace(slot, errorBox(error));
  }
}
