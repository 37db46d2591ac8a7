//! Connections: the OAuth callback that links a provider account, and what follows. Pull
//! providers get a historical pull, backfill providers (Garmin) a backfill request, as a
//! durable job, so a restart right after the OAuth callback does not lose it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use uuid::Uuid;
use wearhouse_domain::connection::{
    Connection, ConnectionCommand, ConnectionError, STATE_TTL_MINUTES,
};

use super::syncs::{Syncs, SyncsError};
use crate::config::ProvidersConfig;
use crate::crypto::{connection_context, CryptoError};
use crate::providers::engine::{Engine, SyncRequest};
use crate::providers::oauth::{self, OAuthError, TokenSet};
use crate::providers::{Endpoints, Provider};
use crate::store::{Actor, CommandError, Commands};

/// Records the first pull of `user`'s new `provider` connection, when the provider has one
/// and it is configured (`WEARHOUSE_HISTORICAL_DAYS_ON_CONNECT`). Returns the run id.
pub async fn after_connect(
    syncs: &Syncs,
    config: &ProvidersConfig,
    provider: &dyn Provider,
    user: Uuid,
) -> Result<Option<Uuid>, SyncsError> {
    let days = config.historical_days_on_connect;
    if !provider.has_history() || days <= 0 {
        return Ok(None);
    }
    let now = Utc::now();
    let req = SyncRequest {
        run_id: Uuid::new_v4(),
        user_id: user,
        provider: provider.name().into(),
        source: "backfill".into(),
        start: now - Duration::days(days),
        end: now,
        data_types: vec![],
    };
    syncs.enqueue(req).await.map(Some)
}

/// What the provider sent to the OAuth callback.
#[derive(Debug, Clone)]
pub struct CallbackParams {
    pub provider: String,
    pub code: Option<String>,
    pub state: Option<String>,
    /// The provider's error code when the user (or the provider) refused consent.
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// Our callback URL, as sent with the authorization request (the exchange repeats it).
    pub callback_url: String,
}

/// Whose consent a callback answers, once its state is known.
#[derive(Debug, Clone)]
pub struct Consent {
    pub provider: &'static str,
    pub user_id: Uuid,
    /// Where the integrator asked the user to be sent back.
    pub redirect_uri: Option<String>,
}

/// Why a callback did not connect. Before the state is known there is nobody to tell but the
/// user; after, the failure carries the [`Consent`] so the integrator's app can be told.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("Unknown provider")]
    UnknownProvider,
    #[error("Missing state")]
    MissingState,
    #[error("Invalid or expired state")]
    InvalidState,
    #[error("OAuth state already used")]
    StateUsed,
    #[error("Authorization denied: {message}")]
    Denied {
        consent: Consent,
        /// The provider's error code.
        error: String,
        message: String,
    },
    #[error("Missing authorization code")]
    MissingCode(Consent),
    #[error("Could not exchange the authorization code")]
    Exchange {
        consent: Consent,
        #[source]
        source: OAuthError,
    },
    #[error("{source}")]
    Record {
        consent: Consent,
        #[source]
        source: CommandError<ConnectionError>,
    },
    #[error("the PKCE verifier does not open")]
    Verifier(#[source] CryptoError),
    #[error("connection pool")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {}", wearhouse_log::pg_message(.0))]
    Db(#[from] tokio_postgres::Error),
}

impl CallbackError {
    /// The consent a failure concerns (`None` before the state is known, or when the failure
    /// is ours rather than the flow's).
    pub fn consent(&self) -> Option<&Consent> {
        match self {
            CallbackError::Denied { consent, .. }
            | CallbackError::MissingCode(consent)
            | CallbackError::Exchange { consent, .. }
            | CallbackError::Record { consent, .. } => Some(consent),
            _ => None,
        }
    }

    /// The OAuth error code reported to the integrator's app.
    pub fn code(&self) -> &str {
        match self {
            CallbackError::Denied { error, .. } => error,
            CallbackError::MissingCode(_) => "invalid_request",
            _ => "server_error",
        }
    }
}

/// Connecting provider accounts (the OAuth callback) and what follows.
#[derive(Clone)]
pub struct Connections {
    engine: Arc<Engine>,
    commands: Commands,
    syncs: Syncs,
}

fn actor() -> Actor {
    Actor {
        kind: "oauth",
        id: "callback".into(),
        request_id: None,
    }
}

impl Connections {
    pub fn new(engine: Arc<Engine>, commands: Commands, syncs: Syncs) -> Self {
        Connections {
            engine,
            commands,
            syncs,
        }
    }

    /// Completes a consent: checks the state (known, unused, fresh, for this provider), records
    /// a refusal, or exchanges the code, asks the provider who the user is, records the
    /// connection with its sealed tokens and queues its first pull.
    pub async fn callback(&self, params: CallbackParams) -> Result<Consent, CallbackError> {
        let engine = &self.engine;
        let (p, endpoints) = engine
            .registry
            .get(&params.provider)
            .ok_or(CallbackError::UnknownProvider)?;
        let st = params.state.ok_or(CallbackError::MissingState)?;
        let hash = oauth::state_hash(&st);
        let row = engine
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT stream_id, user_id, provider, redirect_uri, pkce_verifier, state_used, state_started_at \
                 FROM connections WHERE state_hash = $1",
                &[&hash],
            )
            .await?
            .ok_or(CallbackError::InvalidState)?;
        let (stream, user_id, row_provider): (String, Uuid, String) =
            (row.get(0), row.get(1), row.get(2));
        let sealed_verifier: Option<String> = row.get(4);
        let used: bool = row.get(5);
        let started: DateTime<Utc> = row.get(6);
        if row_provider != p.name() {
            return Err(CallbackError::InvalidState);
        }
        if used {
            return Err(CallbackError::StateUsed);
        }
        if Utc::now() - started > Duration::minutes(STATE_TTL_MINUTES) {
            return Err(CallbackError::InvalidState);
        }
        let consent = Consent {
            provider: p.name(),
            user_id,
            redirect_uri: row.get(3),
        };
        if let Some(error) = params.error {
            let message = params.error_description.unwrap_or_else(|| error.clone());
            let deny = ConnectionCommand::Deny {
                state_hash: hash,
                error: error.clone(),
                at: Utc::now(),
            };
            // The refusal is reported either way; recording it is best effort.
            let _ = self
                .commands
                .execute::<Connection>(&stream, deny, &actor(), Some(user_id), Some("connections"))
                .await;
            return Err(CallbackError::Denied {
                consent,
                error,
                message,
            });
        }
        let Some(code) = params.code else {
            return Err(CallbackError::MissingCode(consent));
        };
        let verifier = match sealed_verifier {
            Some(s) => Some(
                engine
                    .sealer
                    .open(&s, &connection_context(&stream, "pkce_verifier"))
                    .map_err(CallbackError::Verifier)?
                    .plain,
            ),
            None => None,
        };
        let tokens = match oauth::exchange_code(
            &engine.http,
            &endpoints,
            p.token_auth(),
            &code,
            &params.callback_url,
            verifier.as_deref(),
        )
        .await
        {
            Ok(t) => t,
            Err(source) => return Err(CallbackError::Exchange { consent, source }),
        };
        let provider_user_id = self.provider_user_id(p.as_ref(), &endpoints, &tokens).await;
        let command = ConnectionCommand::Authorize {
            state_hash: hash,
            provider_user_id,
            scope: tokens
                .scope
                .clone()
                .or_else(|| Some(p.oauth().scopes.to_string())),
            tokens: engine.seal_tokens(user_id, p.name(), &tokens),
            at: Utc::now(),
        };
        if let Err(source) = self
            .commands
            .execute::<Connection>(
                &stream,
                command,
                &actor(),
                Some(user_id),
                Some("connections"),
            )
            .await
        {
            return Err(CallbackError::Record { consent, source });
        }
        if let Err(e) = after_connect(&self.syncs, &engine.config, p.as_ref(), user_id).await {
            // The connection stands; its first pull can be asked for with POST …/sync.
            tracing::error!(provider = p.name(), error = %e, "first pull not recorded");
        }
        Ok(consent)
    }

    /// The provider's id of the user, from its user-info request right after the exchange;
    /// `None` when the provider has none or it fails (the connection stands without it).
    async fn provider_user_id(
        &self,
        p: &dyn Provider,
        endpoints: &Endpoints,
        tokens: &TokenSet,
    ) -> Option<String> {
        let path = p.oauth().user_info_path?;
        let info = self
            .engine
            .http
            .get(format!("{}{path}", endpoints.api_url))
            .bearer_auth(tokens.access_token.secret())
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())?;
        p.provider_user_id(&info.json::<Value>().await.ok()?)
    }
}
