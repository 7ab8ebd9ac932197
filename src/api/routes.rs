//! Requests to answers: Toxiproxy's routes (paths, methods, status codes and bodies as
//! toxiproxy-server has them) and faultline's own under `/faultline/`.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};

use super::body::ApiBody;
use super::error::ApiError;
use super::registry::Answer;
use super::{capture_file, events, metrics, scenario_body, Api};

/// Largest request body read: every legitimate body is a few kilobytes.
pub const MAX_BODY: usize = 1024 * 1024;

/// Longest wait for a capture's writer to put what it holds in the file before
/// `GET /faultline/proxies/{name}/capture` reads it.
const CAPTURE_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The version `GET /version` reports: the Toxiproxy API faultline speaks (clients compare it
/// to decide what the server supports).
pub const TOXIPROXY_VERSION: &str = "2.12.0";

fn response(status: u16, content_type: Option<&'static str>, body: ApiBody) -> Response<ApiBody> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if let Some(kind) = content_type {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    }
    response
}

/// An error as Go's `http.Error` writes it (plain text content type, the JSON, a newline).
fn error(e: &ApiError) -> Response<ApiBody> {
    let mut r = response(
        e.status,
        Some("text/plain; charset=utf-8"),
        ApiBody::full(e.body()),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A plain-text answer as Go's `http.Error` (and so `http.NotFound`) writes it.
fn plain(status: u16, text: &'static str) -> Response<ApiBody> {
    let mut r = response(
        status,
        Some("text/plain; charset=utf-8"),
        ApiBody::full(text),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn answer(result: Answer) -> Response<ApiBody> {
    match result {
        Ok((204, _)) => response(204, None, ApiBody::Full(None)),
        Ok((status, json)) => response(status, Some("application/json"), ApiBody::full(json)),
        Err(e) => error(&e),
    }
}

/// `%XX` escapes of a path decoded: Toxiproxy's router (gorilla/mux) matches the decoded path,
/// so `/proxies/a%2Fb` is `/proxies/a/b`, a path no route has.
fn decode_path(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What a route wants of the request body.
async fn read_body(body: Incoming) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::new(
                413,
                format!("request body larger than {MAX_BODY} bytes"),
            ))
        }
        Err(e) => Err(ApiError::bad_body(format!("cannot read the body: {e}"))),
    }
}

/// Answers one request.
pub async fn handle(api: &Api, request: Request<Incoming>) -> Response<ApiBody> {
    let browser = request
        .headers()
        .get(USER_AGENT)
        .is_some_and(|ua| ua.as_bytes().starts_with(b"Mozilla/"));
    let Some(path) = decode_path(request.uri().path()) else {
        return error(&ApiError::new(
            400,
            "the path is not valid percent-encoded UTF-8",
        ));
    };
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
    // Route variables match one or more characters (`[^/]+`): `/proxies/` names no proxy.
    if segments.iter().any(|s| s.is_empty()) {
        return plain(404, "404 page not found\n");
    }
    // Toxiproxy refuses browsers, so a web page cannot drive the API (CSRF); so does faultline.
    // Like Toxiproxy's middleware, only on a route that answers the method (else 404 or 405).
    if browser && methods(&segments).contains(&request.method().as_str()) {
        return plain(403, "User agent not allowed\n");
    }
    let method = request.method().clone();
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let wants_body = matches!(method, Method::POST | Method::PATCH | Method::PUT);
    let body = if wants_body {
        match read_body(request.into_body()).await {
            Ok(body) => body,
            Err(e) => return error(&e),
        }
    } else {
        bytes::Bytes::new()
    };
    route(api, &method, &segments, &body, content_type.as_deref()).await
}

async fn route(
    api: &Api,
    method: &Method,
    segments: &[&str],
    body: &[u8],
    content_type: Option<&str>,
) -> Response<ApiBody> {
    use Method as M;
    let update = matches!(*method, M::POST | M::PATCH);
    match (segments, method) {
        (["version"], &M::GET) => response(
            200,
            Some("application/json;charset=utf-8"),
            ApiBody::full(format!("{{\"version\": \"{TOXIPROXY_VERSION}\"}}\n")),
        ),
        (["reset"], &M::POST) => answer(api.registry.lock().await.reset().await),
        (["proxies"], &M::GET) => answer(api.registry.lock().await.index()),
        (["proxies"], &M::POST) => answer(api.registry.lock().await.create(body).await),
        (["populate"], &M::POST) => {
            let (status, json) = api.registry.lock().await.populate(body).await;
            response(status, Some("application/json"), ApiBody::full(json))
        }
        (["proxies", name], &M::GET) => answer(api.registry.lock().await.show(name)),
        (["proxies", name], _) if update => {
            answer(api.registry.lock().await.update(name, body).await)
        }
        (["proxies", name], &M::DELETE) => answer(api.registry.lock().await.delete(name).await),
        (["proxies", name, "toxics"], &M::GET) => answer(api.registry.lock().await.toxics(name)),
        (["proxies", name, "toxics"], &M::POST) => {
            answer(api.registry.lock().await.add_toxic(name, body))
        }
        (["proxies", name, "toxics", toxic], &M::GET) => {
            answer(api.registry.lock().await.toxic(name, toxic))
        }
        (["proxies", name, "toxics", toxic], _) if update => {
            answer(api.registry.lock().await.update_toxic(name, toxic, body))
        }
        (["proxies", name, "toxics", toxic], &M::DELETE) => {
            answer(api.registry.lock().await.remove_toxic(name, toxic))
        }
        (["metrics"], &M::GET) => {
            let text = metrics::render(&*api.registry.lock().await);
            response(
                200,
                Some("text/plain; version=0.0.4; charset=utf-8"),
                ApiBody::full(text),
            )
        }
        (["faultline", "proxies", name, "scenario"], &M::PUT) => {
            if let Err(e) = api.registry.lock().await.proxy(name) {
                return error(&e);
            }
            let text = match scenario_body::scenario_text(body, content_type) {
                Ok(text) => text,
                Err(e) => return error(&e),
            };
            answer(api.registry.lock().await.put_scenario(name, text).await)
        }
        (["faultline", "proxies", name, "scenario"], &M::GET) => {
            match api.registry.lock().await.proxy(name) {
                Ok(proxy) => response(
                    200,
                    Some("application/toml; charset=utf-8"),
                    ApiBody::full(proxy.scenario_text()),
                ),
                Err(e) => error(&e),
            }
        }
        (["faultline", "proxies", name, "summary"], &M::GET) => {
            let registry = api.registry.lock().await;
            answer(registry.proxy(name).map(|p| (200, p.summary_json())))
        }
        (["faultline", "proxies", name, "capture"], &M::GET) => capture(api, name).await,
        (["faultline", "events"], &M::GET) => {
            let rx = events::stream(api.events.subscribe(), api.stop.clone());
            let mut r = response(200, Some("text/event-stream"), ApiBody::Stream(rx));
            r.headers_mut()
                .insert("cache-control", HeaderValue::from_static("no-cache"));
            r
        }
        _ if !methods(segments).is_empty() => response(405, None, ApiBody::Full(None)),
        _ => plain(404, "404 page not found\n"),
    }
}

/// The methods a path's route answers; none for a path no route has. Another method on a known
/// path is 405, as gorilla/mux answers.
fn methods(segments: &[&str]) -> &'static [&'static str] {
    match segments {
        ["version"]
        | ["metrics"]
        | ["faultline", "events"]
        | ["faultline", "proxies", _, "summary" | "capture"] => &["GET"],
        ["reset"] | ["populate"] => &["POST"],
        ["proxies"] | ["proxies", _, "toxics"] => &["GET", "POST"],
        ["proxies", _] | ["proxies", _, "toxics", _] => &["GET", "POST", "PATCH", "DELETE"],
        ["faultline", "proxies", _, "scenario"] => &["GET", "PUT"],
        _ => &[],
    }
}

/// `GET /faultline/proxies/{name}/capture`: the whole blocks written so far (of the last run's
/// capture while the proxy is disabled).
async fn capture(api: &Api, name: &str) -> Response<ApiBody> {
    let (path, sink) = {
        let registry = api.registry.lock().await;
        match registry.proxy(name) {
            Ok(proxy) => (
                proxy.capture_to_serve().cloned(),
                proxy.running().and_then(|r| r.shared.capture.clone()),
            ),
            Err(e) => return error(&e),
        }
    };
    // What was relayed just before the request is in the file we hand out: the writer writes
    // what it holds first (outside the registry's lock). A writer slower than the bound still
    // leaves whole blocks, its own flush at most a second old.
    let running = sink.is_some();
    if let Some(sink) = sink {
        if !sink.flush(CAPTURE_FLUSH_WAIT).await {
            tracing::warn!(proxy = name, "capture: the writer did not flush within {CAPTURE_FLUSH_WAIT:?}; handing out what is in the file");
        }
    }
    let path = match path {
        Ok(path) => path,
        Err(why) => return error(&ApiError::new(404, why)),
    };
    let opened = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        let complete = capture_file::complete_len(&mut file, len)?;
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(0))?;
        Ok::<_, std::io::Error>((file, complete, path))
    })
    .await;
    match opened {
        Ok(Ok((file, len, path))) => {
            let kind = if path.extension().is_some_and(|e| e == "pcap") {
                "application/vnd.tcpdump.pcap"
            } else {
                "application/x-pcapng"
            };
            let mut body =
                crate::store::file_body::FileBody::new(tokio::fs::File::from_std(file), len);
            if running && kind == "application/x-pcapng" {
                // A copy of a capture still being written ends with snapshot marks: `inspect`
                // reads it as a whole file whose transfers in flight the copy cut, not as a
                // capture whose run was killed.
                let mut marks = Vec::new();
                crate::capture::pcapng::snapshot_blocks(&mut marks, crate::utc::now_nanos());
                body = body.with_trailer(bytes::Bytes::from(marks));
            }
            let mut r = response(200, Some(kind), ApiBody::File(body));
            if let Some(file_name) = path.file_name().and_then(|n| n.to_str()) {
                if let Ok(value) = HeaderValue::from_str(&format!(
                    "attachment; filename=\"{}\"",
                    file_name.replace('"', "")
                )) {
                    r.headers_mut().insert("content-disposition", value);
                }
            }
            r
        }
        Ok(Err(e)) => error(&ApiError::new(500, format!("cannot read the capture: {e}"))),
        Err(e) => error(&ApiError::new(500, format!("cannot read the capture: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_percent_decoded() {
        assert_eq!(decode_path("a%20b").as_deref(), Some("a b"));
        assert_eq!(
            decode_path("/proxies/a%2Fb").as_deref(),
            Some("/proxies/a/b")
        );
        assert_eq!(decode_path("%zz"), None);
        assert_eq!(decode_path("%ff"), None);
        assert_eq!(decode_path("%"), None);
    }

    #[test]
    fn other_methods_on_known_paths_are_405() {
        assert_eq!(methods(&["proxies", "x", "toxics"]), ["GET", "POST"]);
        assert!(methods(&["nope"]).is_empty());
        assert!(methods(&["proxies", "x", "toxics", "y", "z"]).is_empty());
    }
}
