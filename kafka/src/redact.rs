//! What never leaves Postgres: password hashes, API-key hashes, refresh-token hashes (developer
//! and SDK), application-secret hashes, invitation token and invitation-code hashes, webhook
//! endpoint secrets, sealed provider tokens, OAuth state hashes and PKCE verifiers. Entries of the aggregates that carry
//! them are relayed with those fields removed; everything else in the entry is kept, so
//! consumers still see that a developer was created, a key issued, a connection authorized.
//!
//! The read models built from those fields (`developers`, `api_keys`, `connections`,
//! `invitations`, `applications`, `sdk_access`) can
//! therefore not be rebuilt from the topic: they always tail Postgres.

use serde_json::Value;
use wearhouse_log::LogEntry;

/// Aggregates whose events hold secrets or hashes of secrets.
pub const SECRET_BEARING_AGGREGATES: &[&str] = &[
    "Developer",
    "ApiKey",
    "Connection",
    "Invitation",
    "WebhookEndpoint",
    "Application",
    "SdkAccess",
];

/// Projections that need the removed fields: run from Postgres even when the others run from
/// Kafka.
pub const POSTGRES_ONLY_PROJECTIONS: &[&str] = &[
    "developers",
    "api_keys",
    "connections",
    "invitations",
    "webhook_endpoints",
    // Reads the endpoints (and connections) read models, which only Postgres has.
    "webhook_outbox",
    "applications",
    "sdk_access",
];

/// Whether a payload field (at any depth) holds a secret or a hash of one.
fn secret_field(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("_hash")
        || k.contains("password")
        || k.contains("secret")
        || k.contains("token")
        || k.contains("verifier")
}

/// Removes every secret field, at any depth (also used for what the audit API shows).
pub fn strip_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !secret_field(k));
            map.values_mut().for_each(strip_secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_secrets),
        _ => {}
    }
}

/// The entry as it may be published: secret-bearing aggregates lose their secret fields;
/// other entries are returned untouched (`None`: nothing to change, avoiding a copy).
pub fn redacted(entry: &LogEntry) -> Option<LogEntry> {
    if !SECRET_BEARING_AGGREGATES.contains(&entry.aggregate_type.as_str()) {
        return None;
    }
    // An unparseable payload is dropped whole rather than relayed unchecked.
    let mut v: Value = serde_json::from_str(entry.payload.get()).unwrap_or(Value::Null);
    strip_secrets(&mut v);
    let mut out = entry.clone();
    out.payload = serde_json::value::to_raw_value(&v).expect("JSON values always encode");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wearhouse_log::Cursor;

    fn entry(aggregate_type: &str, payload: Value) -> LogEntry {
        LogEntry {
            cursor: Cursor { tx: 1, position: 1 },
            aggregate_type: aggregate_type.into(),
            aggregate_id: "a".into(),
            sequence: 1,
            event_type: "X".into(),
            event_version: "1".into(),
            payload: serde_json::value::to_raw_value(&payload).unwrap(),
            metadata: json!({}),
            recorded_at: chrono::Utc::now(),
            user_id: None,
        }
    }

    #[test]
    fn secret_fields_are_removed_at_any_depth_and_the_rest_kept() {
        let e = entry(
            "Connection",
            json!({"Authorized": {"state_hash": "h", "provider_user_id": "p7",
                "tokens": {"access_token": "v2.x", "refresh_token": "v2.y", "expires_at": null},
                "sealed_pkce_verifier": "v2.z"}}),
        );
        let out = redacted(&e).unwrap();
        let text = out.payload.get();
        for gone in ["state_hash", "v2.x", "v2.y", "v2.z", "tokens"] {
            assert!(!text.contains(gone), "{text}");
        }
        assert!(text.contains("p7"), "{text}");
        let e = entry(
            "Developer",
            json!({"Created": {"email": "a@b.c", "password_hash": "$argon2id$..."}}),
        );
        let text = redacted(&e).unwrap().payload.get().to_string();
        assert!(!text.contains("argon2"), "{text}");
        assert!(text.contains("a@b.c"), "{text}");
        let e = entry(
            "WebhookEndpoint",
            json!({"type": "WebhookEndpointCreated", "url": "https://x.example/h",
                "sealed_secret": "v2.sealed"}),
        );
        let text = redacted(&e).unwrap().payload.get().to_string();
        assert!(!text.contains("v2.sealed"), "{text}");
        assert!(text.contains("x.example"), "{text}");
    }

    #[test]
    fn sdk_credentials_lose_their_hashes() {
        let e = entry(
            "Application",
            json!({"type": "ApplicationCreated", "app_id": "app_1", "secret_hash": "s1"}),
        );
        let text = redacted(&e).unwrap().payload.get().to_string();
        assert!(!text.contains("s1") && text.contains("app_1"), "{text}");
        for payload in [
            json!({"type": "SdkRefreshTokenIssued", "token_hash": "h1", "app_id": "app_1"}),
            json!({"type": "InvitationCodeIssued", "code_hash": "h1", "id": "i"}),
        ] {
            let text = redacted(&entry("SdkAccess", payload))
                .unwrap()
                .payload
                .get()
                .to_string();
            assert!(!text.contains("h1") && text.contains("type"), "{text}");
        }
    }

    #[test]
    fn other_aggregates_pass_through_untouched() {
        assert!(redacted(&entry("User", json!({"token": "not a secret here"}))).is_none());
    }
}
