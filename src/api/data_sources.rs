//! `/api/v1/users/{user_id}/data-sources`, and the `source` block every data item carries.

use std::collections::HashMap;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use uuid::Uuid;

use super::{users, ApiError, AppState};
use crate::auth::AnyCredential;

#[derive(Tags)]
enum Tag {
    /// Devices and apps that recorded a user's data
    DataSources,
}

/// Who recorded an item: provider, writing app, device.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct SourceMetadata {
    pub provider: String,
    pub source: Option<String>,
    pub device: Option<String>,
    pub device_type: Option<String>,
    pub device_name: Option<String>,
}

/// The `source` blocks of the given data sources, for joining onto a page of items.
pub async fn source_metadata(
    client: &deadpool_postgres::Object,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, SourceMetadata>, ApiError> {
    let rows = client
        .query(
            "SELECT id, provider, source, device_model, device_type, device_name \
             FROM data_sources WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let model: Option<String> = r.get(3);
            let name: Option<String> = r.get(5);
            (
                r.get(0),
                SourceMetadata {
                    provider: r.get(1),
                    source: r.get(2),
                    // Without a resolved marketing name the model is the best name we have.
                    device_name: name.or_else(|| model.clone()),
                    device: model,
                    device_type: r.get(4),
                },
            )
        })
        .collect())
}

/// Metadata for a sample whose data source row is missing (it should not happen; the import
/// writes the source before its samples). Keeps the item instead of failing the page.
pub fn unknown_source() -> SourceMetadata {
    SourceMetadata {
        provider: "unknown".into(),
        source: None,
        device: None,
        device_type: None,
        device_name: None,
    }
}

#[derive(Object, Debug)]
pub struct DataSourceRead {
    pub id: Uuid,
    pub user_id: Uuid,
    pub provider: String,
    pub user_connection_id: Option<Uuid>,
    pub device_model: Option<String>,
    pub software_version: Option<String>,
    pub source: Option<String>,
    pub device_type: Option<String>,
    pub original_source_name: Option<String>,
    pub display_name: String,
}

#[derive(Object, Debug)]
pub struct DataSourceList {
    pub items: Vec<DataSourceRead>,
    pub total: i64,
}

/// The contract's display name: the maker and the device model (failing that, the original
/// source name) joined by `" - "`, or `"Unknown Source"` when there is neither. The maker is the
/// capitalized provider unless the device names another manufacturer (a third-party scale
/// synced through Apple Health is not "Apple"). A detail that only repeats the maker is left
/// out, so a cloud source reads "Oura", not "Oura - Oura".
pub fn display_name(
    provider: &str,
    manufacturer: Option<&str>,
    device_model: Option<&str>,
    original: Option<&str>,
) -> String {
    let provider = provider.trim();
    let other_maker = manufacturer.map(str::trim).filter(|m| {
        !m.is_empty()
            && !m
                .to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| w == provider.to_lowercase())
    });
    let maker: String = match other_maker {
        Some(m) => m.to_string(),
        None => {
            let mut chars = provider.chars();
            match chars.next() {
                Some(c) => c
                    .to_uppercase()
                    .chain(chars.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        }
    };
    let detail = device_model
        .or(original)
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.eq_ignore_ascii_case(&maker));
    let parts: Vec<&str> = [Some(maker.as_str()).filter(|p| !p.is_empty()), detail]
        .into_iter()
        .flatten()
        .collect();
    if parts.is_empty() {
        "Unknown Source".to_string()
    } else {
        parts.join(" - ")
    }
}

pub struct DataSourcesApi;

#[OpenApi(prefix_path = "/api/v1")]
impl DataSourcesApi {
    /// List a user's data sources
    #[oai(
        path = "/users/:user_id/data-sources",
        method = "get",
        tag = "Tag::DataSources"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
    ) -> Result<Json<DataSourceList>, ApiError> {
        users::load(&state, user_id.0).await?;
        let rows = state
            .pool
            .get()
            .await?
            .query(
                // A cloud provider's data comes through the user's connection to it: the
                // newest connection that was ever authorized (revoked ones included, the data
                // came through them).
                "SELECT d.id, d.user_id, d.provider, coalesce(d.user_connection_id, c.id), d.device_model, \
                        d.software_version, d.source, d.device_type, d.original_source_name, d.manufacturer \
                 FROM data_sources d \
                 LEFT JOIN LATERAL (SELECT id FROM connections \
                     WHERE user_id = d.user_id AND provider = d.provider AND authorized_at IS NOT NULL \
                     ORDER BY authorized_at DESC LIMIT 1) c ON true \
                 WHERE d.user_id = $1 ORDER BY d.created_at, d.id",
                &[&user_id.0],
            )
            .await?;
        let items: Vec<DataSourceRead> = rows
            .iter()
            .map(|r| {
                let provider: String = r.get(2);
                let model: Option<String> = r.get(4);
                let original: Option<String> = r.get(8);
                let manufacturer: Option<String> = r.get(9);
                DataSourceRead {
                    id: r.get(0),
                    user_id: r.get(1),
                    display_name: display_name(
                        &provider,
                        manufacturer.as_deref(),
                        model.as_deref(),
                        original.as_deref(),
                    ),
                    provider,
                    user_connection_id: r.get(3),
                    device_model: model,
                    software_version: r.get(5),
                    source: r.get(6),
                    device_type: r.get(7),
                    original_source_name: original,
                }
            })
            .collect();
        Ok(Json(DataSourceList {
            total: items.len() as i64,
            items,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::display_name;

    #[test]
    fn display_name_prefers_model_then_source_name() {
        assert_eq!(
            display_name(
                "apple",
                Some("Apple Inc."),
                Some("Watch6,1"),
                Some("Ada's Watch")
            ),
            "Apple - Watch6,1"
        );
        assert_eq!(
            display_name("apple", None, None, Some("Ada's Watch")),
            "Apple - Ada's Watch"
        );
        assert_eq!(display_name("garmin", None, None, None), "Garmin");
        assert_eq!(display_name("oura", None, Some(""), None), "Oura");
        assert_eq!(display_name("oura", None, None, Some("Oura")), "Oura");
        assert_eq!(display_name("", None, None, None), "Unknown Source");
    }

    #[test]
    fn another_makers_device_is_named_after_its_maker() {
        assert_eq!(
            display_name("apple", Some("Acme"), Some("BS-200"), Some("Acme Scale")),
            "Acme - BS-200"
        );
        assert_eq!(
            display_name("apple", Some("Withings"), Some("WBS05"), None),
            "Withings - WBS05"
        );
        assert_eq!(
            display_name("apple", Some(" "), Some("X"), None),
            "Apple - X"
        );
        assert_eq!(
            display_name("garmin", Some("Garmin"), Some("fenix 7"), None),
            "Garmin - fenix 7"
        );
    }
}
