//! Trusting a dev relay: its self-signed certificate's SHA-256, fetched over plain HTTP from
//! `/certificate.sha256` on the same port (loopback only natively), or given as hex; and the
//! relay's address, from its URL.

use url::Url;

use crate::Error;

/// Parses 64 hex digits (colons, spaces and line ends allowed between them) into a SHA-256.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '\n' | '\r'))
        .collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

/// `host:port` of an `https://host[:port][/path]` URL (port 443 when not given; IPv6 hosts in
/// brackets).
pub fn authority(relay: &str) -> Result<String, Error> {
    let bad = || Error::BadUrl(relay.to_owned());
    let url = Url::parse(relay).map_err(|_| bad())?;
    if url.scheme() != "https" {
        return Err(bad());
    }
    let host = url
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(bad)?;
    let port = url.port_or_known_default().ok_or_else(bad)?;
    Ok(format!("{host}:{port}"))
}

/// Whether `authority` (`host:port`) is this machine.
pub fn is_loopback(authority: &str) -> bool {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    }
}

/// The answer body of a minimal HTTP/1.1 response, if its status is 200.
pub fn http_body(response: &[u8]) -> Option<&[u8]> {
    let text_end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..text_end]).ok()?;
    let status = head.lines().next()?;
    if !status.starts_with("HTTP/1.") || status.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    Some(&response[text_end + 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_with_or_without_separators() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_hash(&hex), Some([0xab; 32]));
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_hash(&format!("{colons}\n")), Some([0xab; 32]));
        assert_eq!(parse_hash("abc"), None);
        assert_eq!(parse_hash(&"zz".repeat(32)), None);
    }

    #[test]
    fn the_authority_comes_from_an_https_url_with_a_port() {
        assert_eq!(
            authority("https://127.0.0.1:4443").as_deref(),
            Ok("127.0.0.1:4443")
        );
        assert_eq!(
            authority("https://relay.example:443/x?y").as_deref(),
            Ok("relay.example:443")
        );
        assert_eq!(authority("https://[::1]:9").as_deref(), Ok("[::1]:9"));
        assert_eq!(authority("https://a").as_deref(), Ok("a:443"));
        for bad in ["http://a:1", "relay:4443", "https://:1", ""] {
            assert!(authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_is_recognised() {
        assert!(is_loopback("127.0.0.1:4443"));
        assert!(is_loopback("[::1]:4443"));
        assert!(is_loopback("localhost:1"));
        assert!(!is_loopback("10.0.0.1:4443"));
        assert!(!is_loopback("relay.example:443"));
    }

    #[test]
    fn only_a_200_answer_has_a_body() {
        assert_eq!(
            http_body(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"),
            Some(&b"body"[..])
        );
        assert_eq!(http_body(b"HTTP/1.1 404 Not Found\r\n\r\nno"), None);
        assert_eq!(http_body(b"garbage"), None);
    }
}
