// Inbound: conversations per user, newest first, with their latest message and command; one user's
// conversation (what we sent and what they wrote, in time order) with a reply box. A reply
// outside WhatsApp's 24-hour window cannot be free text: the API says so, and the page offers
// the templates with an approved Content SID instead.
import { get, post, query } from '../api.js';
import { navigate } from '../router.js';
import { h, replace } from '../dom.js';
import { badge, card, errorBox, field, link, pageHeader, select, table, timeCell } from '../components.js';

export async function render(main, [phone]) {
  if (phone) return conversation(main, phone);
  const list = h('div');
  const who = h('input', { name: 'phone', type: 'tel', placeholder: '+94771234501', autocomplete: 'off' });
  const open = h('form', { class: 'filters' }, field('Open a conversation with', who), h('div', { class: 'actions' }, h('button', { type: 'submit', text: 'Open' })));
  open.addEventListener('submit', (event) => {
    event.preventDefault();
    if (who.value.trim()) navigate('/ui/inbound/' + encodeURIComponent(who.value.trim()));
  });
  main.append(pageHeader('Inbound'), card('Conversations', open, list));
  try {
    // The latest messages, one row per user (their newest message first), newest users first.
    const page = await get('/inbound' + query({ limit: 200 }));
    const people = new Map();
    for (const m of page.items) {
      const seen = people.get(m.from);
      if (seen) seen.count += 1;
      else people.set(m.from, { ...m, count: 1 });
    }
    replace(list, table([
      ['User', (m) => link('/ui/inbound/' + encodeURIComponent(m.from), m.from)],
      ['Latest message', (m) => m.body],
      ['Received', (m) => timeCell(m.received_at)],
      ['Command', (m) => m.command ? h('span', {}, badge(m.command), m.topic ? ' ' + m.topic : '') : '—'],
      ['Messages', (m) => String(m.count)],
    ], [...people.values()], 'No one has written to us yet.'),
    page.next_cursor ? h('p', { class: 'muted', text: 'From the latest 200 messages; older conversations open by phone above.' }) : null);
  } catch (error) {
    replace(list, errorBox(error));
  }
}

async function conversation(main, phone) {
  const thread = h('div', { class: 'conversation' });
  const body = h('textarea', { name: 'body', placeholder: 'Write a reply…' });
  const templates = select('template_id', [['', 'Free text (within 24 hours of their last message)']], '');
  const result = h('div');
  const form = h('form', {}, field('Send as', templates), field('Reply', body), result, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Send' })));
  main.append(pageHeader('Conversation with ' + phone, link('/ui/users/' + encodeURIComponent(phone), 'User page')), h('div', { class: 'split' }, card('Conversation', thread), card('Reply', form)));
  get('/templates?limit=1000').then((page) => {
    for (const t of page.items.filter((t) => t.content_sid)) templates.append(h('option', { value: t.id, text: 'Approved template: ' + t.name }));
  }).catch(() => {});
  templates.addEventListener('change', () => { body.disabled = Boolean(templates.value); });
  async function load() {
    try {
      const [sent, received] = await Promise.all([get('/messages' + query({ user: phone, limit: 100 })), get('/inbound' + query({ user: phone, limit: 100 }))]);
      const entries = [
        ...sent.items.map((m) => ({ at: m.created_at, node: h('div', { class: 'bubble out' }, m.body, h('small', {}, timeCell(m.created_at), ' · ', m.status)) })),
        ...received.items.map((m) => ({ at: m.received_at, node: h('div', { class: 'bubble in' }, m.body, h('small', {}, timeCell(m.received_at), m.command ? ' · ' + m.command : '')) })),
      ].sort((a, b) => a.at.localeCompare(b.at));
      replace(thread, entries.length ? entries.map((e) => e.node) : h('p', { class: 'empty', text: 'No messages with this user yet.' }));
    } catch (error) { replace(thread, errorBox(error)); }
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const request = templates.value ? { user: phone, template_id: templates.value } : { user: phone, body: body.value };
    try {
      await post('/messages', request);
      body.value = '';
      result.replaceChildren();
      load();
    } catch (error) {
      const window = /24.hour|window/i.test(error.message);
      replace(result, errorBox(error), window ? h('p', { class: 'problem', text: 'WhatsApp allows free text only within 24 hours of the user\'s last message. Choose an approved template under "Send as".' }) : null);
    }
  });
  await load();
}
