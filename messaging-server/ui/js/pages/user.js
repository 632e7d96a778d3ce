// One user: edit name, attributes (JSON), time zone, locale and consent; their topics; the
// messages sent to them, each with its timeline, and what they wrote to us.
import { del, get, patch, put, query } from '../api.js';
import { h, replace } from '../dom.js';
import { badge, card, errorBox, field, notice, pageHeader, pretty, select, showError, table, timeCell } from '../components.js';
import { showTimeline } from './campaign.js';

export async function render(main, [phone]) {
  const path = '/users/' + encodeURIComponent(phone);
  let user;
  try {
    user = await get(path);
  } catch (error) {
    main.append(pageHeader('User ' + phone), errorBox(error));
    return;
  }
  const name = h('input', { name: 'name', value: user.name || '' });
  const consent = select('consent_state', [['OPT_IN', 'Opted in'], ['OPT_OUT', 'Opted out']], user.consent_state);
  const timezone = h('input', { name: 'timezone', value: user.timezone || '', placeholder: 'e.g. Asia/Colombo' });
  const locale = h('input', { name: 'locale', value: user.locale || '', placeholder: 'e.g. en' });
  const attributes = h('textarea', { class: 'code', name: 'attributes', value: pretty(user.attributes), spellcheck: 'false' });
  const errors = h('div');
  const save = h('button', { type: 'submit', class: 'primary', text: 'Save' });
  const form = h('form', {}, h('div', { class: 'row' }, field('Name', name), field('Consent', consent), field('Time zone', timezone), field('Locale', locale)),
    field('Attributes (JSON object)', attributes, 'Saved as given: keys left out are removed.'), errors, h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let parsed;
    try { parsed = JSON.parse(attributes.value || '{}'); } catch (e) { showError(errors, { message: 'Attributes are not JSON: ' + e.message }); return; }
    const body = { name: name.value.trim() || null, consent_state: consent.value, attributes: parsed, timezone: timezone.value.trim() || null, locale: locale.value.trim() || null };
    for (const key of Object.keys(body)) if (body[key] === null) delete body[key];
    try {
      user = await put(path, body);
      showError(errors, null);
      notice('Saved.');
      drawTopics();
    } catch (error) { showError(errors, error); }
  });
  const topics = h('div');
  const topicInput = h('input', { name: 'topic', placeholder: 'Topic, e.g. DANCE' });
  const topicError = h('div');
  function drawTopics() {
    replace(topics, user.topics.length ? h('div', { class: 'actions' }, user.topics.map((t) => h('span', { class: 'badge' }, t, ' ',
      h('button', { type: 'button', class: 'link', 'aria-label': 'Unsubscribe from ' + t, text: '×', on: { click: async () => {
        try { await del(`${path}/subscriptions/${encodeURIComponent(t)}`); user = await get(path); drawTopics(); } catch (e) { showError(topicError, e); }
      } } })))) : h('p', { class: 'empty', text: 'Not subscribed to any topic.' }));
  }
  const subscribe = h('form', { class: 'filters' }, field('Subscribe to', topicInput), h('button', { type: 'submit', text: 'Subscribe' }));
  subscribe.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!topicInput.value.trim()) return;
    try { await put(`${path}/subscriptions/${encodeURIComponent(topicInput.value.trim())}`); topicInput.value = ''; user = await get(path); drawTopics(); showError(topicError, null); } catch (e) { showError(topicError, e); }
  });
  drawTopics();
  const messages = h('div');
  const timeline = h('div');
  const inbound = h('div');
  main.append(
    pageHeader(user.name || user.phone, badge(user.consent_state), h('a', { class: 'button', href: '/ui/inbound/' + encodeURIComponent(user.phone), text: 'Conversation' })),
    h('p', { class: 'muted' }, user.phone, user.wa_id ? ' · WhatsApp id ' + user.wa_id : '', ' · last wrote to us ', timeCell(user.last_inbound_at), ' · created ', timeCell(user.created_at)),
    h('div', { class: 'split' }, card('Profile', form), card('Topics', topics, subscribe, topicError)),
    card('Messages sent', messages, timeline),
    card('Messages received', inbound),
  );
  try {
    const [sent, received] = await Promise.all([get('/messages' + query({ user: user.phone, limit: 50 })), get('/inbound' + query({ user: user.phone, limit: 50 }))]);
    replace(messages, table([
      ['Status', (m) => badge(m.status)], ['Body', (m) => m.body], ['Campaign', (m) => m.campaign_id ? h('a', { href: '/ui/campaigns/' + m.campaign_id, text: 'campaign' }) : 'reply'],
      ['Updated', (m) => timeCell(m.updated_at)], ['', (m) => h('button', { type: 'button', text: 'Timeline', on: { click: () => showTimeline(timeline, m.id) } })],
    ], sent.items, 'No messages sent to this user.'));
    replace(inbound, table([['Received', (m) => timeCell(m.received_at)], ['Body', (m) => m.body], ['Command', (m) => m.command ? badge(m.command) : '—']], received.items, 'This user has not written to us.'));
  } catch (error) {
    replace(messages, errorBox(error));
  }
}
