//! Trusting a dev relay: its self-signed certificate's SHA-256, fetched over plain HTTP from
//! `/certificate.sha256` on the same port (loopback only), or given as hex.

use super::Error;

/// Parses 64 hex digits (colons and spaces allowed) into a SHA-256.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b':' | b' ' | b'\n' | b'\r'))
        .collect();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// `host:port` of an `https://host:port[/path]` URL.
pub fn authority(url: &str) -> Result<&str, Error> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| Error::BadUrl(url.to_owned()))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || !authority.contains(':') {
        return Err(Error::BadUrl(url.to_owned()));
    }
    Ok(authority)
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
