//! Provider icons, drawn for this project, served where upstream serves its own
//! (`/static/provider-icons/<provider>.svg`) so `icon_url` links resolve on this server.

use poem::http::StatusCode;
use poem::web::Path;
use poem::{handler, IntoResponse, Response};

/// (provider, SVG), compiled into the binary: nothing to install next to it.
const ICONS: &[(&str, &str)] = &[
    ("apple", include_str!("provider-icons/apple.svg")),
    ("fitbit", include_str!("provider-icons/fitbit.svg")),
    ("garmin", include_str!("provider-icons/garmin.svg")),
    ("google", include_str!("provider-icons/google.svg")),
    ("oura", include_str!("provider-icons/oura.svg")),
    ("samsung", include_str!("provider-icons/samsung.svg")),
    ("strava", include_str!("provider-icons/strava.svg")),
    ("ultrahuman", include_str!("provider-icons/ultrahuman.svg")),
    ("whoop", include_str!("provider-icons/whoop.svg")),
];

/// The path the icons are served under, as upstream.
pub const ROUTE: &str = "/static/provider-icons/:file";

/// The absolute URL of `provider`'s icon on this server.
pub fn icon_url(public_url: &str, provider: &str) -> String {
    format!(
        "{}/static/provider-icons/{provider}.svg",
        public_url.trim_end_matches('/')
    )
}

#[handler]
pub fn serve(Path(file): Path<String>) -> Response {
    let svg = file
        .strip_suffix(".svg")
        .and_then(|name| ICONS.iter().find(|(p, _)| *p == name));
    match svg {
        Some((_, svg)) => svg
            .to_string()
            .with_content_type("image/svg+xml")
            .with_header("Cache-Control", "public, max-age=86400")
            .into_response(),
        None => poem::web::Json(serde_json::json!({ "detail": "Not Found" }))
            .with_status(StatusCode::NOT_FOUND)
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_icon_is_svg() {
        for (name, svg) in super::ICONS {
            assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{name}");
        }
    }
}
