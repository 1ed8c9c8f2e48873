//! The pacer in the SDK's HTTP client: every HTTP request a client sends (each page of a list,
//! each retry of the SDK's retry strategy) first takes a slot of the [`SlidingWindow`], so the
//! requests of one instance stay under its share of the account quota in any trailing second,
//! and a lone event is never delayed.

use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use jml_core::pacing::SlidingWindow;

/// `inner` (the process's HTTPS client, see [`crate::https_client`]) behind `window`.
pub fn paced_http_client(inner: SharedHttpClient, window: Arc<SlidingWindow>) -> SharedHttpClient {
    SharedHttpClient::new(PacedClient { inner, window })
}

#[derive(Debug)]
struct PacedClient {
    inner: SharedHttpClient,
    window: Arc<SlidingWindow>,
}

impl HttpClient for PacedClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(PacedConnector {
            inner: self.inner.http_connector(settings, components),
            window: self.window.clone(),
        })
    }
}

#[derive(Debug)]
struct PacedConnector {
    inner: SharedHttpConnector,
    window: Arc<SlidingWindow>,
}

impl HttpConnector for PacedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, window) = (self.inner.clone(), self.window.clone());
        HttpConnectorFuture::new(async move {
            window.acquire().await;
            inner.call(request).await
        })
    }
}
