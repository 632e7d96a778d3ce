//! `users`, their topic `subscriptions`, and `topics`: the people campaigns reach, keyed by
//! their E.164 phone number.
//!
//! A phone in a path is URL-encoded (`/users/%2B94771234567`); because a `+` is easily lost
//! on the way, a path phone is also accepted without it (`/users/94771234567`) or with
//! Twilio's `whatsapp:` prefix.

use std::collections::BTreeMap;

use messaging_core::domain::{
    Consent, FieldError, PhoneError, PhoneNumber, TimeZone, Topic, UpsertOutcome, UserChanges,
};
use messaging_core::store::{Page, PageRequest, UserQuery};
use messaging_core::{Engine, EngineError};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use serde_json::Value;

use super::error::ApiError;
use super::{ApiTags, page};

mod resource;

pub use resource::*;

#[derive(ApiResponse)]
enum UserCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<UserBody>),
}

#[derive(ApiResponse)]
enum UserReplaced {
    /// The user did not exist and was created.
    #[oai(status = 201)]
    Created(Json<UserBody>),
    /// The user was replaced.
    #[oai(status = 200)]
    Replaced(Json<UserBody>),
}

#[derive(ApiResponse)]
enum Subscribed {
    /// Subscribed.
    #[oai(status = 201)]
    Created(Json<SubscriptionBody>),
    /// The user was subscribed already; nothing changed.
    #[oai(status = 200)]
    Existing(Json<SubscriptionBody>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

/// Parses a phone from a path, where it may come without its `+` (lost to URL encoding) or
/// with Twilio's `whatsapp:` prefix.
fn path_phone(text: &str) -> Result<PhoneNumber, ApiError> {
    let mut text = text.trim();
    if let Some(prefix) = text.get(..9)
        && prefix.eq_ignore_ascii_case("whatsapp:")
    {
        text = text[9..].trim_start();
    }
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return PhoneNumber::parse(text).map_err(|e| ApiError::invalid("phone", e.to_string()));
    }
    PhoneNumber::parse(&format!("+{text}")).map_err(|error| {
        // Positions count in the text as sent, without the `+` added here.
        let error = match error {
            PhoneError::InvalidCharacter { found, position } => PhoneError::InvalidCharacter {
                found,
                position: position - 1,
            },
            other => other,
        };
        ApiError::invalid("phone", error.to_string())
    })
}

/// Parses a phone given in a body, where E.164 with its `+` is required.
fn body_phone(text: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(text).map_err(|e| ApiError::invalid("phone", e.to_string()))
}

/// Refuses a body `phone` other than the path's: a user's phone is their key and never
/// changes.
fn same_phone(path: &PhoneNumber, body: Option<&str>) -> Result<(), ApiError> {
    match body.map(body_phone).transpose()? {
        Some(body) if &body != path => Err(ApiError::invalid(
            "phone",
            format!("{body} is not the phone in the path ({path}); a user's phone cannot change"),
        )),
        _ => Ok(()),
    }
}

fn path_topic(text: &str) -> Result<Topic, ApiError> {
    Topic::parse(text).map_err(|e| ApiError::invalid("topic", e.to_string()))
}

/// The fields of a user a request may set, as sent.
struct Fields {
    name: Option<String>,
    wa_id: Option<String>,
    consent_state: Option<String>,
    attributes: Option<BTreeMap<String, Value>>,
    timezone: Option<String>,
    locale: Option<String>,
}

impl Fields {
    /// The changes these fields ask for, or every invalid field at once.
    fn into_changes(self) -> Result<UserChanges, ApiError> {
        let mut invalid = Vec::new();
        let consent_state = self.consent_state.and_then(|text| {
            Consent::parse(&text)
                .map_err(|e| invalid.push(FieldError::new("consent_state", e.to_string())))
                .ok()
        });
        let timezone = self.timezone.and_then(|text| {
            TimeZone::parse(&text)
                .map_err(|e| invalid.push(FieldError::new("timezone", e.to_string())))
                .ok()
        });
        let changes = UserChanges {
            name: self.name,
            wa_id: self.wa_id,
            consent_state,
            attributes: self
                .attributes
                .unwrap_or_default()
                .into_iter()
                .collect::<serde_json::Map<_, _>>()
                .into(),
            timezone,
            locale: self.locale,
            topics: Vec::new(),
        };
        invalid.extend(changes.problems());
        if !invalid.is_empty() {
            return Err(EngineError::Invalid(invalid).into());
        }
        Ok(changes)
    }
}

/// One page of a short list the engine answers whole (a user's subscriptions, the topics),
/// ordered by `key`, which is also the cursor; `q` keeps the items whose key contains it.
fn page_of<T>(items: Vec<T>, key: fn(&T) -> &str, q: Option<&str>, page: &PageRequest) -> Page<T> {
    let q = q
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_uppercase);
    let limit = page.limit as usize;
    let mut matching = items
        .into_iter()
        .filter(|item| q.as_deref().is_none_or(|q| key(item).contains(q)))
        .filter(|item| page.cursor.as_deref().is_none_or(|c| key(item) > c))
        .skip(match page.cursor {
            Some(_) => 0,
            None => usize::try_from(page.offset.unwrap_or(0)).unwrap_or(usize::MAX),
        })
        .take(limit + 1)
        .collect::<Vec<_>>();
    let next_cursor = if matching.len() > limit {
        matching.truncate(limit);
        matching.last().map(|item| key(item).to_owned())
    } else {
        None
    };
    Page {
        items: matching,
        next_cursor,
    }
}

/// Users, subscriptions and topics.
pub struct UsersApi {
    engine: Engine,
}

impl UsersApi {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// Create a user
    ///
    /// A new user is `OPT_IN` unless `consent_state` says otherwise. A phone that is stored
    /// already answers 409: change that user with `PUT` or `PATCH /users/{phone}`.
    #[oai(path = "/users", method = "post", operation_id = "create_user")]
    async fn create(&self, input: Json<UserInput>) -> Result<UserCreated, ApiError> {
        let input = input.0;
        let phone = body_phone(&input.phone)?;
        let changes = Fields {
            name: input.name,
            wa_id: input.wa_id,
            consent_state: input.consent_state,
            attributes: input.attributes,
            timezone: input.timezone,
            locale: input.locale,
        }
        .into_changes()?;
        let user = self.engine.create_user(phone, changes).await?;
        Ok(UserCreated::Created(Json(user.into())))
    }

    /// List users
    ///
    /// Users by phone, narrowed by free text (`q`, matched against the phone, the name and
    /// attribute values), consent and topic. For conditions on attributes (`city = Colombo`),
    /// preview a segment (`POST /segments/preview`).
    #[oai(path = "/users", method = "get", operation_id = "list_users")]
    async fn list(
        &self,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
        /// Free text matched against the phone, the name and attribute values. A number (four
        /// or more digits, with the spaces and dashes people write) matches phones only:
        /// `+9477` those starting with it, `1234` those holding those digits.
        #[oai(validator(max_length = 200))]
        q: Query<Option<String>>,
        /// Only users with this consent state: `OPT_IN` or `OPT_OUT`.
        #[oai(validator(max_length = 16))]
        consent: Query<Option<String>>,
        /// Only subscribers of this topic (case-insensitive).
        #[oai(validator(max_length = 64))]
        topic: Query<Option<String>>,
    ) -> Result<Json<UserPage>, ApiError> {
        let query = UserQuery {
            q: q.0,
            consent: consent
                .0
                .as_deref()
                .map(Consent::parse)
                .transpose()
                .map_err(|e| ApiError::invalid("consent", e.to_string()))?,
            topic: topic
                .0
                .as_deref()
                .map(Topic::parse)
                .transpose()
                .map_err(|e| ApiError::invalid("topic", e.to_string()))?,
        };
        // The cursor is a phone: a `+` left unencoded in a query string arrives as a space,
        // and a cursor of " 9477…" would restart the list from the top.
        let cursor = cursor.0.map(|c| match c.strip_prefix(' ') {
            Some(rest) => format!("+{}", rest.trim_start()),
            None => c,
        });
        let found = self
            .engine
            .list_users(&query, &page::request(limit.0, cursor, offset.0))
            .await?;
        Ok(Json(UserPage {
            items: found.items.into_iter().map(Into::into).collect(),
            next_cursor: found.next_cursor,
        }))
    }

    /// Get a user
    #[oai(path = "/users/:phone", method = "get", operation_id = "get_user")]
    async fn get(
        &self,
        /// The E.164 phone, URL-encoded (`%2B94771234567`); the `+` may be left out.
        #[oai(validator(max_length = 32))]
        phone: Path<String>,
    ) -> Result<Json<UserBody>, ApiError> {
        let user = self.engine.get_user(&path_phone(&phone)?).await?;
        Ok(Json(user.into()))
    }

    /// Replace a user
    ///
    /// Sets the whole user: fields left out are cleared and attributes replaced, except
    /// `consent_state`, which a stored user keeps when it is left out. Subscriptions are
    /// kept. Answers 200 with the user, or 201 when there was no user with this phone and
    /// one was created.
    #[oai(path = "/users/:phone", method = "put", operation_id = "replace_user")]
    async fn replace(
        &self,
        /// The E.164 phone, URL-encoded (`%2B94771234567`); the `+` may be left out.
        #[oai(validator(max_length = 32))]
        phone: Path<String>,
        input: Json<UserReplacement>,
    ) -> Result<UserReplaced, ApiError> {
        let phone = path_phone(&phone)?;
        let input = input.0;
        same_phone(&phone, input.phone.as_deref())?;
        let changes = Fields {
            name: input.name,
            wa_id: input.wa_id,
            consent_state: input.consent_state,
            attributes: input.attributes,
            timezone: input.timezone,
            locale: input.locale,
        }
        .into_changes()?;
        let (user, outcome) = self.engine.replace_user(phone, changes).await?;
        Ok(match outcome {
            UpsertOutcome::Inserted => UserReplaced::Created(Json(user.into())),
            UpsertOutcome::Updated => UserReplaced::Replaced(Json(user.into())),
        })
    }

    /// Update a user
    ///
    /// Merges the fields given into the stored user: attributes key by key, other fields
    /// replaced when given; fields left out or null are kept (clear them with `PUT`). An
    /// unknown phone answers 404.
    #[oai(path = "/users/:phone", method = "patch", operation_id = "update_user")]
    async fn update(
        &self,
        /// The E.164 phone, URL-encoded (`%2B94771234567`); the `+` may be left out.
        #[oai(validator(max_length = 32))]
        phone: Path<String>,
        input: Json<UserPatch>,
    ) -> Result<Json<UserBody>, ApiError> {
        let phone = path_phone(&phone)?;
        let input = input.0;
        same_phone(&phone, input.phone.as_deref())?;
        let changes = Fields {
            name: input.name,
            wa_id: input.wa_id,
            consent_state: input.consent_state,
            attributes: input.attributes,
            timezone: input.timezone,
            locale: input.locale,
        }
        .into_changes()?;
        let user = self.engine.update_user(phone, changes).await?;
        Ok(Json(user.into()))
    }

    /// Delete a user
    ///
    /// Deletes the user and their subscriptions.
    #[oai(
        path = "/users/:phone",
        method = "delete",
        operation_id = "delete_user"
    )]
    async fn delete(
        &self,
        /// The E.164 phone, URL-encoded (`%2B94771234567`); the `+` may be left out.
        #[oai(validator(max_length = 32))]
        phone: Path<String>,
    ) -> Result<Deleted, ApiError> {
        self.engine.delete_user(&path_phone(&phone)?).await?;
        Ok(Deleted::Deleted)
    }

    /// List a user's subscriptions
    #[oai(
        path = "/users/:phone/subscriptions",
        method = "get",
        operation_id = "list_subscriptions"
    )]
    async fn subscriptions(
        &self,
        /// The E.164 phone, URL-encoded (`%2B94771234567`); the `+` may be left out.
        #[oai(validator(max_length = 32))]
        phone: Path<String>,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
        /// Free text matched against the topic.
        #[oai(validator(max_length = 200))]
        q: Query<Option<String>>,
    ) -> Result<Json<SubscriptionPage>, ApiError> {
        let subscriptions = self.engine.subscriptions(&path_phone(&phone)?).await?;
        let found = page_of(
            subscriptions,
            |s| s.topic.as_str(),
            q.0.as_deref(),
            &page::request(limit.0, cursor.0, offset.0),
        );
        Ok(Json(SubscriptionPage {
            items: found.items.into_iter().map(Into::into).collect(),
            next_cursor: found.next_cursor,
        }))
    }

    /// Subscribe a user to a topic
    ///
    /// Topics are case-insensitive and stored upper-case. Answers 201 when the user was
    /// subscribed now, 200 when they were already (subscribing again changes nothing).
    #[oai(
        path = "/users/:phone/subscriptions/:topic",
        method = "put",
        operation_id = "subscribe"
    )]
    async fn subscribe(
        &self,
        /// The E.164 phone, URL-encoded (`%2B94771234567`); the `+` may be left out.
        #[oai(validator(max_length = 32))]
        phone: Path<String>,
        /// The topic: letters, digits, `_` and `-`, at most 64.
        #[oai(validator(max_length = 64))]
        topic: Path<String>,
    ) -> Result<Subscribed, ApiError> {
        let phone = path_phone(&phone)?;
        let topic = path_topic(&topic)?;
        let created = self.engine.subscribe(&phone, &topic).await?;
        let subscription = self
            .engine
            .subscriptions(&phone)
            .await?
            .into_iter()
            .find(|s| s.topic == topic)
            // Only a concurrent unsubscribe or delete gets here.
            .ok_or_else(|| ApiError::not_found("subscription", format!("{phone}/{topic}")))?;
        let body = Json(subscription.into());
        Ok(if created {
            Subscribed::Created(body)
        } else {
            Subscribed::Existing(body)
        })
    }

    /// Unsubscribe a user from a topic
    ///
    /// Answers 404 when the user is unknown or not subscribed to the topic.
    #[oai(
        path = "/users/:phone/subscriptions/:topic",
        method = "delete",
        operation_id = "unsubscribe"
    )]
    async fn unsubscribe(
        &self,
        /// The E.164 phone, URL-encoded (`%2B94771234567`); the `+` may be left out.
        #[oai(validator(max_length = 32))]
        phone: Path<String>,
        /// The topic (case-insensitive).
        #[oai(validator(max_length = 64))]
        topic: Path<String>,
    ) -> Result<Deleted, ApiError> {
        let phone = path_phone(&phone)?;
        let topic = path_topic(&topic)?;
        // An unknown user is reported as such, not as a missing subscription.
        self.engine.get_user(&phone).await?;
        self.engine.unsubscribe(&phone, &topic).await?;
        Ok(Deleted::Deleted)
    }

    /// List topics
    ///
    /// Every topic someone is subscribed to, by name, with its number of subscribers.
    #[oai(path = "/topics", method = "get", operation_id = "list_topics")]
    async fn topics(
        &self,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
        /// Free text matched against the topic.
        #[oai(validator(max_length = 200))]
        q: Query<Option<String>>,
    ) -> Result<Json<TopicPage>, ApiError> {
        let topics = self.engine.topics().await?;
        let found = page_of(
            topics,
            |t| t.topic.as_str(),
            q.0.as_deref(),
            &page::request(limit.0, cursor.0, offset.0),
        );
        Ok(Json(TopicPage {
            items: found.items.into_iter().map(Into::into).collect(),
            next_cursor: found.next_cursor,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_phones_may_lose_their_plus_or_carry_the_whatsapp_prefix() {
        for text in [
            "+94771234567",
            "94771234567",
            " 94771234567",
            "whatsapp:+94771234567",
            "WhatsApp:94771234567",
        ] {
            assert_eq!(path_phone(text).unwrap().as_str(), "+94771234567", "{text}");
        }
        assert!(path_phone("not-a-phone").is_err());
        assert!(path_phone("123").is_err());
    }

    #[test]
    fn short_lists_page_by_key_with_a_cursor_or_an_offset() {
        let items = vec!["A", "B", "C", "D", "E"];
        let first = page_of(items.clone(), |s| s, None, &PageRequest::first(2));
        assert_eq!(first.items, ["A", "B"]);
        assert_eq!(first.next_cursor.as_deref(), Some("B"));
        let next = PageRequest {
            limit: 2,
            cursor: first.next_cursor,
            offset: None,
        };
        let second = page_of(items.clone(), |s| s, None, &next);
        assert_eq!(second.items, ["C", "D"]);
        let last = PageRequest {
            limit: 2,
            cursor: None,
            offset: Some(4),
        };
        let last = page_of(items.clone(), |s| s, None, &last);
        assert_eq!(last.items, ["E"]);
        assert_eq!(last.next_cursor, None);
        let found = page_of(items, |s| s, Some("d"), &PageRequest::first(10));
        assert_eq!(found.items, ["D"]);
    }
}
