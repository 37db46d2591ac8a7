//! Health check and the coverage document.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use serde_json::Value;

#[derive(Tags)]
pub enum Tag {
    /// Platform health and metadata
    Meta,
}

#[derive(Object)]
pub struct Health {
    pub message: String,
}

pub struct MetaApi;

#[OpenApi]
impl MetaApi {
    /// Health check
    #[oai(path = "/", method = "get", tag = "Tag::Meta")]
    async fn health(&self) -> Json<Health> {
        Json(Health {
            message: "Server is running!".into(),
        })
    }

    /// What each provider and importer delivers (series types, workout, sleep and score fields)
    #[oai(path = "/api/v1/meta/coverage", method = "get", tag = "Tag::Meta")]
    async fn coverage(&self) -> Json<Value> {
        Json(crate::coverage::document().clone())
    }
}
