//! What kind of refusal a command's error is, so a boundary (the HTTP API) maps it by kind and
//! never by reading its message.

use crate::api_key::ApiKeyError;
use crate::application::ApplicationError;
use crate::connection::ConnectionError;
use crate::developer::DeveloperError;
use crate::import::ImportError;
use crate::invitation::InvitationError;
use crate::provider_setting::ProviderSettingError;
use crate::sync_run::SyncRunError;
use crate::user::UserError;
use crate::webhook_endpoint::WebhookEndpointError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// The aggregate the command addresses does not exist (or no longer does).
    NotFound,
    /// The command is not valid for the aggregate's input or state.
    Invalid,
}

/// A command error that knows its kind.
pub trait Rejection: std::error::Error {
    fn kind(&self) -> RejectionKind;
}

macro_rules! not_found_or_invalid {
    ($($error:ty),* $(,)?) => {$(
        impl Rejection for $error {
            fn kind(&self) -> RejectionKind {
                match self {
                    <$error>::NotFound => RejectionKind::NotFound,
                    _ => RejectionKind::Invalid,
                }
            }
        }
    )*};
}

not_found_or_invalid!(
    ApiKeyError,
    ApplicationError,
    InvitationError,
    ConnectionError,
    DeveloperError,
    ImportError,
    SyncRunError,
    UserError,
    WebhookEndpointError,
);

impl Rejection for ProviderSettingError {
    fn kind(&self) -> RejectionKind {
        RejectionKind::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_variants_are_not_found_and_the_rest_invalid() {
        assert_eq!(UserError::NotFound.kind(), RejectionKind::NotFound);
        assert_eq!(
            UserError::Invalid("x".into()).kind(),
            RejectionKind::Invalid
        );
        assert_eq!(ConnectionError::NotActive.kind(), RejectionKind::Invalid);
        assert_eq!(ProviderSettingError::BadMode.kind(), RejectionKind::Invalid);
    }
}
