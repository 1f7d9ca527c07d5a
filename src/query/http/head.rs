//! Reading a request head and writing a response: what the transport takes, what it refuses,
//! and the bytes of an answer.
//!
//! Invariants: a head is at most [`MAX_HEAD`] bytes with at most [`MAX_HEADERS`] headers;
//! a body at most [`MAX_BODY`] bytes, its length given once (repeated `Content-Length`
//! headers must agree, else 400: the request-smuggling pattern); `Transfer-Encoding` is
//! refused (501); the request target is origin-form (`/path?query`) or absolute-form
//! (`http://host/path`, reduced to its path), anything else is a 400. Every refusal is a
//! JSON body `{"error": …, "status": N}`. Nothing here panics on any input.

use std::io::Write as _;

/// Longest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most request headers.
pub const MAX_HEADERS: usize = 64;
/// Longest request body (the API takes none; a small one is read and ignored).
pub const MAX_BODY: usize = 64 * 1024;

/// What a handler answers.
#[derive(Clone, Debug)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl HttpReply {
    /// A JSON error `{"error": message, "status": status}`.
    pub fn error(status: u16, message: &str) -> Self {
        HttpReply {
            status,
            content_type: "application/json",
            body: serde_json::json!({ "error": message, "status": status }).to_string(),
        }
    }
}

/// One parsed request head.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    /// The origin-form target: path and query.
    pub target: String,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<String>,
    /// Bytes of the head, and of the body that follows it.
    pub len: usize,
    pub body: usize,
    pub keep_alive: bool,
}

/// Why a request cannot be answered by the handler.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    pub fn reply(&self) -> HttpReply {
        HttpReply::error(self.status, &self.message)
    }
}

/// Parses the head at the start of `buf`: Ok(None) while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let too_long = || Refusal::new(431, format!("the request head is over {MAX_HEAD} bytes"));
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(too_long()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(431, format!("more than {MAX_HEADERS} request headers")))
        }
        Err(e) => return Err(Refusal::new(400, format!("malformed HTTP request ({e})"))),
    };
    if len > MAX_HEAD {
        return Err(too_long());
    }
    let values = |name: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
            .collect::<Vec<String>>()
    };
    if !values("transfer-encoding").is_empty() {
        return Err(Refusal::new(
            501,
            "request bodies with Transfer-Encoding are not supported; the API takes no body",
        ));
    }
    let body = content_length(&values("content-length"))?;
    if body > MAX_BODY {
        return Err(Refusal::new(413, format!("the request body is over {MAX_BODY} bytes")));
    }
    let connection = values("connection").join(",").to_ascii_lowercase();
    let keep_alive = match req.version {
        Some(1) => !connection.split(',').any(|t| t.trim() == "close"),
        _ => connection.split(',').any(|t| t.trim() == "keep-alive"),
    };
    let target = origin_form(req.path.unwrap_or_default())?;
    Ok(Some(Head {
        method: req.method.unwrap_or("GET").to_string(),
        target,
        authorization: values("authorization").into_iter().next(),
        len,
        body,
        keep_alive,
    }))
}

/// The body length from every `Content-Length` value (each may be a comma list): all must
/// be the same decimal number.
fn content_length(values: &[String]) -> Result<usize, Refusal> {
    let mut length = None;
    for item in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Refusal::new(400, format!("Content-Length is not a number: {item:?}")));
        }
        // Digits only: a parse failure is an overflow, i.e. over any limit.
        let n = item.parse::<usize>().unwrap_or(usize::MAX);
        match length {
            Some(m) if m != n => {
                return Err(Refusal::new(
                    400,
                    "conflicting Content-Length headers; send the body's length once",
                ))
            }
            _ => length = Some(n),
        }
    }
    Ok(length.unwrap_or(0))
}

/// The path and query of a request target: origin-form as it is, absolute-form
/// (`http://host/path`) reduced to its path; anything else is refused.
fn origin_form(target: &str) -> Result<String, Refusal> {
    if target.starts_with('/') {
        return Ok(target.to_string());
    }
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return Err(Refusal::new(
            400,
            format!("the request target {target:?} must start with / (e.g. GET /health)"),
        ));
    };
    Ok(match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => rest[i..].to_string(),
        Some(i) => format!("/{}", &rest[i..]),
        None => "/".to_string(),
    })
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The whole response, head and body, for one write.
pub fn response(reply: &HttpReply, keep_alive: bool, head_only: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(reply.body.len() + 200);
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nServer: vigil\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    if reply.status == 401 {
        out.extend_from_slice(b"WWW-Authenticate: Bearer realm=\"vigil\"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(reply.body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(raw: &[u8]) -> Option<u16> {
        parse_head(raw).err().map(|r| r.status)
    }

    #[test]
    fn parses_heads_and_refuses_what_it_does_not_take() {
        let h = parse_head(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.method.as_str(), h.target.as_str(), h.body, h.keep_alive),
            ("GET", "/a?b=1", 0, true)
        );
        assert_eq!(h.authorization.as_deref(), Some("Bearer t"));
        let h = parse_head(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive, "HTTP/1.0 closes unless asked");
        let h = parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = parse_head(b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!((h.len, h.body), (39, 3));
        assert!(
            parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none(),
            "incomplete"
        );
        assert_eq!(status(b"\x00\x01 garbage\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: lots\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"), Some(400));
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n"),
            Some(413)
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n"),
            Some(413)
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(501)
        );
        let long = format!("GET /{} HTTP/1.1\r\n", "x".repeat(MAX_HEAD));
        assert_eq!(status(long.as_bytes()), Some(431));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()), Some(431));
    }

    #[test]
    fn conflicting_lengths_and_targets_without_a_slash_are_bad_requests() {
        // Two lengths that disagree: the smuggling pattern.
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc"),
            Some(400)
        );
        assert_eq!(status(b"POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabc"), Some(400));
        // The same length twice is one length.
        let h = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, 3);
        let h = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nab")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, 2);
        // Targets.
        assert_eq!(status(b"GET health HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET * HTTP/1.1\r\n\r\n"), Some(400));
        let target = |raw: &[u8]| parse_head(raw).unwrap().unwrap().target;
        assert_eq!(target(b"GET http://h:1/health?x=1 HTTP/1.1\r\n\r\n"), "/health?x=1");
        assert_eq!(target(b"GET HTTPS://h HTTP/1.1\r\n\r\n"), "/");
        assert_eq!(target(b"GET http://h?x HTTP/1.1\r\n\r\n"), "/?x");
    }

    #[test]
    fn every_refusal_is_json_with_its_status() {
        for raw in [
            &b"GET health HTTP/1.1\r\n\r\n"[..],
            b"\x00 x\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let r = parse_head(raw).unwrap_err();
            let body: serde_json::Value = serde_json::from_str(&r.reply().body).unwrap();
            assert_eq!(body["status"], r.status);
            assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
        let out = String::from_utf8(response(&HttpReply::error(401, "no"), true, false)).unwrap();
        assert!(out.contains("WWW-Authenticate: Bearer"), "{out}");
    }
}
