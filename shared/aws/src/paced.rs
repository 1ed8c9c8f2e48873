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

/// The requests a [`recording_http_client`] saw, as one line each: the operation (the
/// `X-Amz-Target` header of a JSON protocol, else method and path) and the body exactly as sent
/// (a query-protocol form is shown decoded). `jml doctor --canary` prints them.
#[derive(Clone, Debug, Default)]
pub struct RequestLog(Arc<std::sync::Mutex<Vec<String>>>);

impl RequestLog {
    /// The lines recorded since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn push(&self, line: String) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
    }
}

/// `inner`, recording every request's shape into `log`.
pub fn recording_http_client(inner: SharedHttpClient, log: RequestLog) -> SharedHttpClient {
    SharedHttpClient::new(RecordingClient { inner, log })
}

#[derive(Debug)]
struct RecordingClient {
    inner: SharedHttpClient,
    log: RequestLog,
}

impl HttpClient for RecordingClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(RecordingConnector {
            inner: self.inner.http_connector(settings, components),
            log: self.log.clone(),
        })
    }
}

#[derive(Debug)]
struct RecordingConnector {
    inner: SharedHttpConnector,
    log: RequestLog,
}

impl HttpConnector for RecordingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.log.push(request_shape(&request));
        self.inner.call(request)
    }
}

/// One request as a line: `X-Amz-Target body` (JSON protocols), `POST /path body` (REST JSON),
/// `Action=...&...` decoded (the query protocol).
pub fn request_shape(request: &HttpRequest) -> String {
    let body = request.body().bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    match request.headers().get("x-amz-target") {
        Some(target) => format!("{target} {body}"),
        None if body.starts_with("Action=") => form_decode(&body),
        None => {
            let path = request.uri().split("://").nth(1).and_then(|r| r.find('/').map(|i| &r[i..])).unwrap_or("/");
            format!("{} {path} {body}", request.method())
        }
    }
}

/// `a=b%2Fc&d=e+f` -> `a=b/c d=e f`: a query-protocol body, readable.
fn form_decode(body: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (b'+', _, _) => out.push(b' '),
                (b'%', Some(hi), Some(lo)) => {
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                    i += 2;
                }
                (b, _, _) => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&').map(decode).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::body::SdkBody;

    fn request(uri: &str, target: Option<&'static str>, body: &'static str) -> HttpRequest {
        let mut r = HttpRequest::new(SdkBody::from(body));
        r.set_uri(uri).expect("uri");
        r.set_method("POST").expect("method");
        if let Some(t) = target {
            r.headers_mut().insert("x-amz-target", t);
        }
        r
    }

    #[test]
    fn shapes_show_the_operation_and_the_body_as_sent() {
        let json = request(
            "https://example.eu-west-1.amazonaws.com/",
            Some("ExampleService.CreateThing"),
            r#"{"Name":"jml-canary"}"#,
        );
        assert_eq!(request_shape(&json), r#"ExampleService.CreateThing {"Name":"jml-canary"}"#);
        let form = request(
            "https://example.amazonaws.com/",
            None,
            "Action=CreateThing&Path=%2Fjml%2F&Tags.member.1.Value=a+b%zz%E2%9C%93",
        );
        assert_eq!(request_shape(&form), "Action=CreateThing Path=/jml/ Tags.member.1.Value=a b%zz\u{2713}");
        let rest = request("https://example.eu-west-1.amazonaws.com/things/PutThing", None, "{}");
        assert_eq!(request_shape(&rest), "POST /things/PutThing {}");
    }
}
