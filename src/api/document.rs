//! Completes the OpenAPI document with what the handlers' own types cannot say.
//!
//! Some answers never reach a handler: a credential refused by the security extractor (401), a
//! parameter or body that fails to parse (400), a body over `WEARHOUSE_MAX_JSON_BYTES` (413).
//! They are produced by the extractors and the middleware in `super::app`, so they are added
//! here to every operation that can meet them, with the `{"detail": ...}` body they carry.
//! Parameters left without a description get the one their name has everywhere in this API.

use std::collections::HashMap;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem_openapi::registry::{
    MetaApi, MetaMediaType, MetaOperation, MetaParamIn, MetaResponse, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::OpenApi;

use super::error::Detail;

/// The API `T` with its document completed.
pub struct Documented<T>(pub T);

impl<T: OpenApi> OpenApi for Documented<T> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = T::meta();
        for api in &mut apis {
            for path in &mut api.paths {
                for op in &mut path.operations {
                    complete(op);
                }
            }
        }
        apis
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
        Detail::register(registry);
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        self.0.add_routes(route_table)
    }
}

fn complete(op: &mut MetaOperation) {
    let has_body = op.request.is_some();
    if !op.security.is_empty() {
        add_response(
            op,
            401,
            "Missing or invalid credentials (`X-Open-Wearables-API-Key` or `Authorization: Bearer`)",
        );
    }
    if has_body || !op.params.is_empty() {
        add_response(
            op,
            400,
            "A parameter or the body does not match this operation's schema",
        );
    }
    if has_body {
        add_response(op, 413, "The request body is larger than the server accepts");
    }
    op.responses.responses.sort_by_key(|r| r.status.unwrap_or(u16::MAX));
    for param in &mut op.params {
        if param.description.is_none() {
            param.description = describe(&param.name, &param.in_type).map(str::to_string);
        }
    }
}

fn add_response(op: &mut MetaOperation, status: u16, description: &'static str) {
    if op
        .responses
        .responses
        .iter()
        .any(|r| r.status == Some(status))
    {
        return;
    }
    op.responses.responses.push(MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: vec![MetaMediaType {
            content_type: "application/json; charset=utf-8",
            schema: Detail::schema_ref(),
        }],
        headers: vec![],
    });
}

/// What a parameter of this name means wherever it appears.
fn describe(name: &str, in_type: &MetaParamIn) -> Option<&'static str> {
    let path = matches!(in_type, MetaParamIn::Path);
    Some(match name {
        "user_id" if path => "The user's id",
        "user_id" => "Only this user's entries",
        "provider" if path => "Provider name, e.g. `garmin`, `oura`, `whoop`",
        "provider" => "Only entries of this provider",
        "key_id" => "The API key's id (or the key itself)",
        "token" => "The signed upload token returned by `…/import/apple/xml/s3`",
        "import_id" => "The import's id (the `task_id` returned when it was accepted)",
        "workout_id" => "The workout's id",
        "sleep_id" => "The sleep session's id",
        "cycle_id" => "The menstrual cycle's id",
        "device_type" => "Device type, e.g. `watch`, `phone`, `ring`",
        "type_name" => "The backfill data type to retry",
        "page" => "Page number, from 1",
        "limit" => "Largest number of items to return",
        "offset" => "Items to skip before the first one returned",
        "cursor" => "Opaque cursor from a previous page's `pagination.next_cursor` or `previous_cursor`",
        "sort_by" => "Field to sort by",
        "sort_order" => "`asc` or `desc`",
        "search" => "Case-insensitive text matched against name, e-mail and external id",
        "email" => "Only the user with this e-mail (case-insensitive)",
        "external_user_id" => "Only the user with this external id",
        "start_date" => {
            "Start of the time range: an ISO 8601 date or date-time, or a Unix timestamp in seconds"
        }
        "end_date" => {
            "End of the time range: an ISO 8601 date or date-time, or a Unix timestamp in seconds"
        }
        "start_time" => "Start of the time range (ISO 8601 date-time)",
        "end_time" => "End of the time range (ISO 8601 date-time)",
        "types" => "Series types to return (repeat the parameter or separate with commas)",
        "resolution" => "Aggregate samples into buckets of this size (`raw`: no aggregation)",
        "record_type" => "Only workouts of this type",
        "category" => "Only scores of this category",
        "redirect_uri" => "Where the user's browser is sent once the provider has answered",
        "code" => "The authorization code the provider sent back",
        "state" => "The state value issued by `…/authorize`",
        "error" => "The error code the provider sent back",
        "error_description" => "The provider's explanation of the error",
        "message" => "The error message to show",
        "enabled_only" => "Only providers that are enabled",
        "cloud_only" => "Only providers with a cloud API",
        "data_type" => "Which data to pull (`all` when absent)",
        "since" => "Pull data from this Unix timestamp (seconds) on",
        "async" => "Queue the sync and answer at once (`true`), or wait for it (`false`)",
        "days" => "How many days back to pull",
        "status" => "Only runs with this status",
        "source" => "Only runs started this way",
        "replay" => "How many recent events to send before live ones",
        "Last-Event-ID" => "The last event id received: the stream resumes after it",
        _ => return None,
    })
}
