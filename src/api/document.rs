//! Completes the OpenAPI document with what the handlers' own types cannot say.
//!
//! Some answers never reach a handler: a credential refused by the security extractor (401), a
//! parameter or body that fails to parse (400), a body over `WEARHOUSE_MAX_JSON_BYTES` (413).
//! They are produced by the extractors and the middleware in `super::app`, so they are added
//! here to every operation that can meet them, with the `{"detail": ...}` body they carry.
//! Parameters left without a description get the one their name has everywhere in this API.
//! Optional fields of response objects are sent as `null` (the contract's `anyOf [T, null]`),
//! which poem-openapi does not declare, so they are marked nullable here.

use std::collections::HashMap;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem_openapi::registry::{
    MetaApi, MetaMediaType, MetaOperation, MetaParamIn, MetaResponse, MetaSchema, MetaSchemaRef,
    Registry,
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
                    complete(&path.path, op);
                }
            }
        }
        apis
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
        Detail::register(registry);
        for schema in registry.schemas.values_mut() {
            nullable_optionals(schema);
        }
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        self.0.add_routes(route_table)
    }
}

/// Every property an object does not require may be `null`: an `Option` field is serialized as
/// `null` unless it is skipped, and a skipped one is simply absent.
fn nullable_optionals(schema: &mut MetaSchema) {
    for (name, prop) in &mut schema.properties {
        if schema.required.contains(name) {
            continue;
        }
        match prop {
            MetaSchemaRef::Inline(inner) => inner.nullable = true,
            MetaSchemaRef::Reference(_) => {
                // A `$ref` cannot carry siblings in OpenAPI 3.0: wrap it.
                let reference = std::mem::replace(prop, MetaSchemaRef::Reference(String::new()));
                *prop = MetaSchemaRef::Inline(Box::new(MetaSchema {
                    all_of: vec![reference],
                    nullable: true,
                    ..MetaSchema::ANY
                }));
            }
        }
    }
}

/// Operations that answer `null` when there is nothing to summarise (`Json<Option<T>>`, which
/// poem-openapi declares as plain `T`); the contract declares `anyOf [T, null]`.
const NULLABLE_ANSWERS: &[&str] = &["/api/v1/users/{user_id}/summaries/body"];

fn complete(path: &str, op: &mut MetaOperation) {
    if NULLABLE_ANSWERS.contains(&path) {
        for r in op
            .responses
            .responses
            .iter_mut()
            .filter(|r| r.status == Some(200))
        {
            for media in &mut r.content {
                let schema =
                    std::mem::replace(&mut media.schema, MetaSchemaRef::Reference(String::new()));
                media.schema = MetaSchemaRef::Inline(Box::new(MetaSchema {
                    all_of: vec![schema],
                    nullable: true,
                    ..MetaSchema::ANY
                }));
            }
        }
    }
    let has_body = op.request.is_some();
    if !op.security.is_empty() {
        add_response(
            op,
            401,
            "Missing or invalid credentials (`X-Open-Wearables-API-Key` or `Authorization: Bearer`)",
        );
    }
    let sdk = crate::auth::SDK_BEARER_SCHEME;
    if op.security.iter().any(|req| req.contains_key(sdk)) {
        add_response(
            op,
            403,
            "The SDK token belongs to another user than the path's `user_id`",
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
        add_response(
            op,
            413,
            "The request body is larger than the server accepts",
        );
    }
    op.responses
        .responses
        .sort_by_key(|r| r.status.unwrap_or(u16::MAX));
    for response in &mut op.responses.responses {
        for media in &mut response.content {
            if media.content_type == "text/event-stream" {
                media.schema = MetaSchemaRef::Inline(Box::new(sse_event()));
            }
        }
    }
    for param in &mut op.params {
        if param.description.is_none() {
            param.description = describe(&param.name, &param.in_type).map(str::to_string);
        }
        if let Some(schema) = constrain(path, &op.method, &param.name, &param.in_type) {
            param.schema = MetaSchemaRef::Inline(Box::new(schema));
        } else if let MetaSchemaRef::Inline(schema) = &mut param.schema {
            // Free text in a URL never holds NUL (refused with 400 before any handler).
            if schema.ty == "string"
                && schema.format.is_none()
                && schema.enum_items.is_empty()
                && schema.pattern.is_none()
            {
                schema.pattern = Some("^[^\\u0000]*$".into());
            }
        }
    }
}

/// OpenAPI 3.0 describes a server-sent-event stream by the schema of one event; the event's
/// `data` is the JSON of the item (a `SyncStatusEvent` for the sync stream).
fn sse_event() -> MetaSchema {
    let string = || MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")));
    MetaSchema {
        description: Some("One event: `data` holds the item as JSON"),
        properties: vec![("event", string()), ("id", string()), ("data", string())],
        required: vec!["data"],
        ..MetaSchema::new("object")
    }
}

/// The values a parameter really accepts, where its Rust type (a `String`) says less than the
/// handler checks: time bounds, and the provider and backfill names this build knows.
fn constrain(
    path: &str,
    method: &poem::http::Method,
    name: &str,
    in_type: &MetaParamIn,
) -> Option<MetaSchema> {
    let inline = |schema: MetaSchema| MetaSchemaRef::Inline(Box::new(schema));
    let one_of = |values: Vec<String>| MetaSchema {
        enum_items: values.into_iter().map(serde_json::Value::from).collect(),
        ..MetaSchema::new("string")
    };
    let providers = crate::providers::all();
    match name {
        // `parse_datetime`: ISO 8601 date or date-time, or Unix seconds.
        "start_date" | "end_date" | "start_time" | "end_time" => Some(MetaSchema {
            any_of: vec![
                inline(MetaSchema::new_with_format("string", "date-time")),
                inline(MetaSchema::new_with_format("string", "date")),
                inline(MetaSchema {
                    pattern: Some("^-?[0-9]{1,11}(\\.[0-9]{1,6})?$".into()),
                    ..MetaSchema::new("string")
                }),
            ],
            ..MetaSchema::new("string")
        }),
        // The provider redirects the browser there: only an absolute URL will do.
        "redirect_uri" => Some(MetaSchema::new_with_format("string", "uri")),
        // Deliveries are taken only from providers that push or ping.
        "provider"
            if path == "/api/v1/providers/{provider}/webhooks"
                && method == poem::http::Method::POST =>
        {
            Some(one_of(
                providers
                    .iter()
                    .filter(|p| p.as_push().is_some())
                    .map(|p| p.name().to_string())
                    .collect(),
            ))
        }
        // Only providers that verify their webhook URL with a GET challenge answer one, and
        // only they hold app-level subscriptions.
        "provider"
            if (path == "/api/v1/providers/{provider}/webhooks"
                && method == poem::http::Method::GET)
                || path.starts_with("/api/v1/providers/{provider}/webhooks/subscriptions") =>
        {
            Some(one_of(
                providers
                    .iter()
                    .filter(|p| p.as_subscriptions().is_some())
                    .map(|p| p.name().to_string())
                    .collect(),
            ))
        }
        // A pull sync exists only for providers with a REST pull (Garmin pushes: 501, as
        // upstream answers for it).
        "provider"
            if path == "/api/v1/providers/{provider}/users/{user_id}/sync"
                && matches!(in_type, MetaParamIn::Path) =>
        {
            Some(one_of(
                providers
                    .iter()
                    .filter(|p| p.as_pull().is_some())
                    .map(|p| p.name().to_string())
                    .collect(),
            ))
        }
        // The vendor passthrough serves providers with a workouts endpoint (Ultrahuman has
        // none: 501, as upstream answers for such a provider), and reads one workout only
        // where the provider can (not Fitbit).
        "provider"
            if path.starts_with("/api/v1/providers/{provider}/users/{user_id}/workouts")
                && matches!(in_type, MetaParamIn::Path) =>
        {
            let detail = path.ends_with("{workout_id}");
            Some(one_of(
                providers
                    .iter()
                    .filter(|p| {
                        p.as_vendor_workouts()
                            .is_some_and(|v| !detail || v.detail_request("id").is_some())
                    })
                    .map(|p| p.name().to_string())
                    .collect(),
            ))
        }
        // The passthrough's window bounds are read as `start_date` is.
        "summary_start_time" | "summary_end_time"
            if path.starts_with("/api/v1/providers/{provider}/users/{user_id}/workouts") =>
        {
            constrain(path, method, "start_date", in_type)
        }
        // Connections are kept per contract provider name (others are refused with 400).
        "provider" if path.starts_with("/api/v1/users/{user_id}/connections/{provider}") => {
            Some(one_of(
                wearhouse_domain::priority::PROVIDERS
                    .iter()
                    .map(|p| p.to_string())
                    .collect(),
            ))
        }
        // The cloud-provider routes serve only the providers compiled in (the OAuth callback
        // takes any name: it redirects to the error page instead of refusing).
        "provider"
            if matches!(in_type, MetaParamIn::Path)
                && (path == "/api/v1/oauth/{provider}/authorize"
                    || path.starts_with("/api/v1/providers/{provider}")) =>
        {
            Some(one_of(
                providers.iter().map(|p| p.name().to_string()).collect(),
            ))
        }
        // The priority routes know every contract provider name and device type.
        "provider" if path.starts_with("/api/v1/priorities/providers/") => Some(one_of(
            wearhouse_domain::priority::PROVIDERS
                .iter()
                .map(|p| p.to_string())
                .collect(),
        )),
        "device_type" if path.starts_with("/api/v1/priorities/device-types/") => Some(one_of(
            wearhouse_domain::priority::DEFAULT_DEVICE_TYPES
                .iter()
                .map(|(d, _)| d.to_string())
                .collect(),
        )),
        // Series codes (and the newer spelling of `energy`); comma lists are accepted as well.
        "types" if path.ends_with("/timeseries") => Some(MetaSchema {
            items: Some(Box::new(inline(one_of(
                wearhouse_domain::series::SERIES_TYPES
                    .iter()
                    .map(|s| s.code.to_string())
                    .chain(["active_energy".to_string()])
                    .collect(),
            )))),
            ..MetaSchema::new("array")
        }),
        "type_name" => Some(one_of(
            providers
                .iter()
                .filter_map(|p| p.as_backfill())
                .flat_map(|b| b.backfill_types().iter().map(|t| t.to_string()))
                .collect(),
        )),
        _ => None,
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
        "key_id" => "The API key's id (never the key itself)",
        "app_id" => "The application's `app_id` (`app_…`)",
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
        "cursor" => {
            "Opaque cursor from a previous page's `pagination.next_cursor` or `previous_cursor`"
        }
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
        "filter_by_modification_time" => {
            "Select records by when they changed at the provider rather than when they happened \
             (Suunto and Polar; no effect for the providers served here)"
        }
        "samples" | "zones" | "route" => {
            "Also fetch a workout's samples, heart-rate zones or route (Suunto and Polar; no \
             effect for the providers served here)"
        }
        "summary_start_time" => "Pull only data from this time on (ISO 8601 or Unix seconds)",
        "summary_end_time" => "Pull only data up to this time (ISO 8601 or Unix seconds)",
        "days" => "How many days back to pull",
        "endpoint_id" => "The webhook endpoint's id (`ep_…`)",
        "message_id" => "The webhook message's id (`msg_…`)",
        "iterator" => "Opaque iterator from a previous page's `iterator`",
        "before" => "Only items before this time (ISO 8601 date-time)",
        "after" => "Only items after this time (ISO 8601 date-time)",
        "event_types" => "Only attempts of messages of these event types (repeatable)",
        "status" => {
            "Only items with this status (sync runs: their status; webhook attempts: 0 success, \
             2 failed)"
        }
        "source" => "Only runs started this way",
        "replay" => "How many recent events to send before live ones",
        "Last-Event-ID" => "The last event id received: the stream resumes after it",
        _ => return None,
    })
}

/// The methods each documented path answers, for the `Allow` header of a 405 (RFC 9110 §15.5.6).
pub struct AllowTable {
    routes: Vec<(Vec<Option<String>>, Vec<Method>)>,
}

impl AllowTable {
    /// From the API's own document, plus the plain GET routes `app` adds beside it.
    pub fn of<T: OpenApi>(_api: &T, extra_get: &[&str]) -> AllowTable {
        let mut routes: Vec<(Vec<Option<String>>, Vec<Method>)> = vec![];
        let documented = T::meta().into_iter().flat_map(|api| api.paths);
        let extra = extra_get.iter().map(|p| (p.to_string(), vec![Method::GET]));
        for (path, methods) in documented
            .map(|p| {
                let methods = p.operations.iter().map(|o| o.method.clone()).collect();
                (p.path, methods)
            })
            .chain(extra)
        {
            let segments = segments(&path);
            match routes.iter_mut().find(|(s, _)| *s == segments) {
                Some((_, known)) => known.extend(methods),
                None => routes.push((segments, methods)),
            }
        }
        AllowTable { routes }
    }

    /// `GET, HEAD, POST`-style value for a concrete request path, if a route matches it. Where
    /// several templates match, the one the router picks wins: a literal segment beats a
    /// parameter at the first place they differ.
    pub fn header(&self, path: &str) -> Option<String> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let (_, methods) = self
            .routes
            .iter()
            .filter(|(segs, _)| {
                segs.len() == parts.len()
                    && segs
                        .iter()
                        .zip(&parts)
                        .all(|(s, p)| s.as_deref().is_none_or(|s| s == *p))
            })
            .max_by_key(|(segs, _)| segs.iter().map(Option::is_some).collect::<Vec<_>>())?;
        let mut names: Vec<&str> = methods.iter().map(Method::as_str).collect();
        // The router answers HEAD wherever it answers GET.
        if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
            names.push("HEAD");
        }
        names.sort_unstable();
        names.dedup();
        Some(names.join(", "))
    }
}

/// Path template segments: `Some(literal)` or `None` for a `{parameter}` / `:parameter`.
fn segments(path: &str) -> Vec<Option<String>> {
    path.trim_end_matches('/')
        .split('/')
        .map(|s| (!(s.starts_with('{') || s.starts_with(':'))).then(|| s.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_prefers_literal_segments_and_adds_head() {
        let table = AllowTable {
            routes: vec![
                (segments("/p/{provider}/users/{id}"), vec![Method::POST]),
                (segments("/p/garmin/users/{id}"), vec![Method::GET]),
                (segments("/"), vec![Method::GET]),
            ],
        };
        assert_eq!(table.header("/p/garmin/users/1").unwrap(), "GET, HEAD");
        assert_eq!(table.header("/p/oura/users/1").unwrap(), "POST");
        assert_eq!(table.header("/").unwrap(), "GET, HEAD");
        assert_eq!(table.header("/nope"), None);
    }
}
