//! Which requests the filter looks at: `POST` with a JSON body. Everything else continues at
//! once, untouched, without buffering.

/// True for `POST` requests whose media type is `application/json` (parameters such as
/// `charset` allowed, case-insensitive).
pub fn is_json_post(method: Option<&str>, content_type: Option<&str>) -> bool {
    method == Some("POST") && content_type.is_some_and(is_json_media_type)
}

fn is_json_media_type(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default();
    media_type.trim().eq_ignore_ascii_case("application/json")
}

/// A declared `Content-Length` larger than `limit` (the body can be skipped without buffering).
pub fn declared_oversize(content_length: Option<&str>, limit: usize) -> bool {
    content_length
        .and_then(|value| value.trim().parse::<u64>().ok())
        .is_some_and(|length| length > limit as u64)
}

/// The most body bytes to hold for a request. With a declared `Content-Length` the body's size
/// is known up front, so the whole `max_body_bytes` can be used. Without one (chunked, or
/// HTTP/2 without the header) the filter only learns the size chunk by chunk, and the host
/// rejects the request (Envoy: 413) if the chunk that crosses the limit overflows its own
/// buffer; half the limit is kept free for that chunk, which with Envoy's default 1 MiB buffer
/// leaves 512 KiB of headroom.
pub fn hold_limit(max_body_bytes: usize, length_declared: bool) -> usize {
    if length_declared {
        max_body_bytes
    } else {
        max_body_bytes / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_posts_pass() {
        let json = Some("application/json");
        assert!(is_json_post(Some("POST"), json));
        assert!(is_json_post(
            Some("POST"),
            Some("Application/JSON ; charset=utf-8")
        ));
        assert!(!is_json_post(Some("GET"), json));
        assert!(!is_json_post(Some("post"), json));
        assert!(!is_json_post(None, json));
        assert!(!is_json_post(Some("POST"), None));
        for other in [
            "text/plain",
            "application/json-seq",
            "application/jsonx",
            "text/event-stream",
            "",
        ] {
            assert!(!is_json_post(Some("POST"), Some(other)), "{other}");
        }
    }

    #[test]
    fn undeclared_lengths_keep_headroom() {
        assert_eq!(hold_limit(1 << 20, true), 1 << 20);
        assert_eq!(hold_limit(1 << 20, false), 1 << 19);
    }

    #[test]
    fn declared_length_over_the_limit_is_oversize() {
        assert!(declared_oversize(Some("1025"), 1024));
        assert!(!declared_oversize(Some("1024"), 1024));
        assert!(!declared_oversize(Some("abc"), 1024));
        assert!(!declared_oversize(None, 1024));
        assert!(!declared_oversize(Some("99999999999999999999"), 1024));
    }
}
