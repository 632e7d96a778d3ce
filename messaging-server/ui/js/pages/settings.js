// Settings: how this server sends (sandbox or Twilio, the sender, whether Twilio is polled), the
// webhook URLs to paste into the Twilio console, signature validation, the send rate and
// limits. Read-only: they come from the server's environment; secrets are never shown.
import { get } from '../api.js';
import { h } from '../dom.js';
import { badge, card, count, errorBox, notice, pageHeader } from '../components.js';

function copyable(value) {
  const input = h('input', { readonly: true, value, 'aria-label': value });
  const button = h('button', { type: 'button', text: 'Copy', on: { click: async () => { try { await navigator.clipboard.writeText(value); notice('Copied.'); } catch { input.select(); } } } });
  return h('div', { class: 'filters' }, input, button);
}

export async function render(main) {
  main.append(pageHeader('Settings'));
  let s;
  try { s = await get('/settings'); } catch (error) { main.append(errorBox(error)); return; }
  const facts = (rows) => h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]));
  main.append(
    h('div', { class: 'grid' },
      card('Provider', facts([
        ['Mode', badge(s.provider)],
        ['Sender', s.sender || 'the built-in sandbox (no network; statuses are simulated)'],
        ['Twilio API', s.twilio_api_base || '—'],
        ['Polling Twilio', s.provider !== 'twilio' ? '—'
          : s.twilio_poll_seconds ? `every ${s.twilio_poll_seconds} s: statuses and inbound messages are also read from Twilio's list of messages`
            : 'off: statuses and inbound messages come by webhook'],
        ['Database', s.database],
        ['Version', s.version],
      ]), s.twilio_sandbox_sender ? h('p', { class: 'problem', text: 'Twilio\'s shared sandbox number takes one message every 3 seconds.' }) : null),
      card('Security', facts([
        ['Webhook signatures', s.validate_signature ? 'checked (X-Twilio-Signature)' : 'not checked'],
        ['API token', s.api_token_required ? 'required' : 'not set: the API is open to anyone who can reach it'],
      ])),
      card('Sending limits', facts([
        ['Send rate', s.send_rate_per_second + ' messages per second'],
        ['Daily conversations', s.daily_conversation_limit ? count(s.daily_conversation_limit) : 'no limit'],
        ['Frequency cap', s.frequency_cap_per_24h ? s.frequency_cap_per_24h + ' per user per 24 h' : 'none'],
        ['Send lease', s.send_lease_seconds + ' s'],
        ['Largest upload', count(s.max_body_bytes) + ' bytes'],
        ['Largest JSON body', count(s.max_json_body_bytes) + ' bytes'],
      ]))),
    card('Webhooks for the Twilio console', h('p', { class: 'muted' }, 'Built from PUBLIC_URL (', h('code', { text: s.public_url }), '). In the Twilio console, under the WhatsApp sender:'),
      h('h3', { text: 'When a message comes in' }), copyable(s.webhooks.inbound),
      h('h3', { text: 'Status callback URL' }), copyable(s.webhooks.status)),
  );
}
