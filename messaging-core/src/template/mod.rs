//! Message templates: `{{name}}`, `{{attributes.city}}`, `{{event.discount}}` and
//! `{{ name | default("there") }}`, rendered with minijinja in strict mode (a placeholder with
//! no value and no default is an error, never an empty string in a customer's message).
