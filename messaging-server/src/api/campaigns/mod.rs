//! `campaigns`: their definitions, their lifecycle (launch, pause, resume, cancel), and what
//! they send: a preview before, their messages and statistics after.

use messaging_core::Engine;
use messaging_core::domain::{CampaignCommand, CampaignId};
use messaging_core::store::CampaignQuery;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::activity::StatsBody;
use super::error::ApiError;
use super::messages::{MessagePage, MessageState, message_query};
use super::{ApiTags, page};

mod resource;

pub use resource::*;

#[derive(ApiResponse)]
enum CampaignCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<CampaignBody>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

fn campaign_id(id: &str) -> Result<CampaignId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("campaign", id))
}

/// Campaigns.
pub struct CampaignsApi {
    engine: Engine,
}

impl CampaignsApi {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    async fn command(&self, id: &str, command: CampaignCommand) -> Result<CampaignBody, ApiError> {
        let campaign = self
            .engine
            .command_campaign(campaign_id(id)?, command)
            .await?;
        Ok(campaign.into())
    }
}

#[OpenApi(tag = "ApiTags::Campaigns")]
impl CampaignsApi {
    /// Create a campaign
    ///
    /// Created as a `draft`, or `scheduled` when the body says so. The template and segment
    /// must exist; every invalid field is named in the 422 answer.
    #[oai(path = "/campaigns", method = "post", operation_id = "create_campaign")]
    async fn create(&self, input: Json<CampaignInput>) -> Result<CampaignCreated, ApiError> {
        let campaign = self.engine.create_campaign(input.0.try_into()?).await?;
        Ok(CampaignCreated::Created(Json(campaign.into())))
    }

    /// List campaigns
    #[oai(path = "/campaigns", method = "get", operation_id = "list_campaigns")]
    async fn list(
        &self,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
        /// Free text matched against the name.
        #[oai(validator(max_length = 200))]
        q: Query<Option<String>>,
        /// Only campaigns in this state.
        status: Query<Option<CampaignState>>,
    ) -> Result<Json<CampaignPage>, ApiError> {
        let query = CampaignQuery {
            q: q.0.filter(|q| !q.trim().is_empty()),
            status: status.0.map(Into::into),
        };
        let found = self
            .engine
            .list_campaigns(&query, &page::request(limit.0, cursor.0, offset.0))
            .await?;
        Ok(Json(CampaignPage {
            items: found.items.into_iter().map(Into::into).collect(),
            next_cursor: found.next_cursor,
        }))
    }

    /// Get a campaign
    #[oai(path = "/campaigns/:id", method = "get", operation_id = "get_campaign")]
    async fn get(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Json<CampaignBody>, ApiError> {
        let campaign = self.engine.get_campaign(campaign_id(&id)?).await?;
        Ok(Json(campaign.into()))
    }

    /// Replace a campaign
    ///
    /// Only a campaign that is not sending (`draft`, `scheduled`, `paused`) can change
    /// (409 otherwise); its state stays as it is.
    #[oai(
        path = "/campaigns/:id",
        method = "put",
        operation_id = "replace_campaign"
    )]
    async fn replace(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
        input: Json<CampaignInput>,
    ) -> Result<Json<CampaignBody>, ApiError> {
        let campaign = self
            .engine
            .update_campaign(campaign_id(&id)?, input.0.try_into()?)
            .await?;
        Ok(Json(campaign.into()))
    }

    /// Delete a campaign
    ///
    /// A running campaign cannot be deleted (409): pause or cancel it first.
    #[oai(
        path = "/campaigns/:id",
        method = "delete",
        operation_id = "delete_campaign"
    )]
    async fn delete(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        self.engine.delete_campaign(campaign_id(&id)?).await?;
        Ok(Deleted::Deleted)
    }

    /// Launch a campaign
    ///
    /// From `draft` or `scheduled` to `running`. A manual campaign's recipients are written
    /// to the outbox at once (`fanned_out` says how many) and the dispatcher sends them; an
    /// event-triggered campaign starts listening for its events and sends nothing by
    /// itself. Any other state answers 409.
    #[oai(
        path = "/campaigns/:id/launch",
        method = "post",
        operation_id = "launch_campaign"
    )]
    async fn launch(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Json<LaunchedCampaign>, ApiError> {
        let (campaign, run) = self.engine.launch_campaign(campaign_id(&id)?).await?;
        Ok(Json(LaunchedCampaign {
            campaign: campaign.into(),
            fanned_out: run.map(|run| run.messages),
        }))
    }

    /// Pause a campaign
    ///
    /// From `scheduled` or `running` to `paused`: it stops sending and listening; nothing
    /// is lost. Any other state answers 409.
    #[oai(
        path = "/campaigns/:id/pause",
        method = "post",
        operation_id = "pause_campaign"
    )]
    async fn pause(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Json<CampaignBody>, ApiError> {
        Ok(Json(self.command(&id, CampaignCommand::Pause).await?))
    }

    /// Resume a campaign
    ///
    /// From `paused` to `running`: it goes on where it stopped. Any other state answers 409.
    #[oai(
        path = "/campaigns/:id/resume",
        method = "post",
        operation_id = "resume_campaign"
    )]
    async fn resume(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Json<CampaignBody>, ApiError> {
        Ok(Json(self.command(&id, CampaignCommand::Resume).await?))
    }

    /// Cancel a campaign
    ///
    /// From any state that has not ended to `cancelled`: what it had not sent is skipped,
    /// with the reason. A completed or cancelled campaign answers 409.
    #[oai(
        path = "/campaigns/:id/cancel",
        method = "post",
        operation_id = "cancel_campaign"
    )]
    async fn cancel(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Json<CampaignBody>, ApiError> {
        Ok(Json(self.command(&id, CampaignCommand::Cancel).await?))
    }

    /// Preview a campaign
    ///
    /// How many recipients it has, and the messages the first of them would get, rendered
    /// as the campaign would and with the decisions known now (opted out, a missing
    /// placeholder, outside the WhatsApp window with no approved template), without writing
    /// or sending anything. An event-triggered campaign's sample is rendered with the data of
    /// the latest event it listens for, when one was recorded.
    #[oai(
        path = "/campaigns/:id/preview",
        method = "get",
        operation_id = "preview_campaign"
    )]
    async fn preview(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
        /// How many recipients' messages to render (1–100, default 10).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        sample: Query<Option<u32>>,
    ) -> Result<Json<CampaignPreviewBody>, ApiError> {
        let preview = self
            .engine
            .preview_campaign(campaign_id(&id)?, sample.0.unwrap_or(10))
            .await?;
        Ok(Json(preview.into()))
    }

    /// List a campaign's messages
    ///
    /// Newest first; each message's history and decisions are in `GET messages/{id}`.
    #[oai(
        path = "/campaigns/:id/messages",
        method = "get",
        operation_id = "campaign_messages"
    )]
    async fn messages(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
        /// Only messages in this status.
        status: Query<Option<MessageState>>,
        /// Only messages to this phone (E.164).
        #[oai(validator(max_length = 32))]
        user: Query<Option<String>>,
    ) -> Result<Json<MessagePage>, ApiError> {
        let campaign = self.engine.get_campaign(campaign_id(&id)?).await?;
        let query = message_query(Some(campaign.id), user.0.as_deref(), status.0)?;
        let found = self
            .engine
            .list_messages(&query, &page::request(limit.0, cursor.0, offset.0))
            .await?;
        Ok(Json(found.into()))
    }

    /// A campaign's statistics
    ///
    /// Its messages per status, the delivered share and failures by Twilio error code.
    #[oai(
        path = "/campaigns/:id/stats",
        method = "get",
        operation_id = "campaign_stats"
    )]
    async fn stats(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Json<StatsBody>, ApiError> {
        let stats = self.engine.stats(Some(campaign_id(&id)?)).await?;
        Ok(Json(stats.into()))
    }
}
