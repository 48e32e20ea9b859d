//! Percent-encoding for request paths and query values, and form-style decoding of listed keys.
//!
//! S3 signs the exact bytes of the path, so every key is encoded here once (RFC 3986 unreserved
//! characters kept, `/` kept in keys) and the signer is told not to encode again. This module
//! does no I/O and knows nothing about signing.

/// Encodes an object key for the request path: RFC 3986 unreserved characters and `/` are kept,
/// every other byte becomes `%XX`, so `//`, `/./` and a leading `/` survive unchanged.
pub fn encode_key(key: &str) -> String {
    encode(key, true)
}

/// Encodes one path segment or query value: only RFC 3986 unreserved characters are kept, so a
/// space is `%20` and a plus is `%2B` (the signer re-reads the query with form rules).
pub fn encode_component(value: &str) -> String {
    encode(value, false)
}

fn encode(value: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for &byte in value.as_bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes a value sent with `encoding-type=url`: `+` is a space, then `%XX` sequences are
/// bytes of UTF-8; errors name the malformed value.
pub fn decode_form(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => out.push(byte),
                    None => return Err(format!("bad percent-escape in url-encoded value '{value}'")),
                }
                i += 3;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("url-encoded value '{value}' is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_key(input: &str, expected: &str) {
        assert_eq!(encode_key(input), expected, "encode_key({input:?})");
    }

    #[track_caller]
    fn check_component(input: &str, expected: &str) {
        assert_eq!(encode_component(input), expected, "encode_component({input:?})");
    }

    #[track_caller]
    fn check_decode(input: &str, expected: Result<&str, &str>) {
        assert_eq!(
            decode_form(input).as_deref(),
            expected.map_err(|e| e.to_string()).as_deref(),
            "decode_form({input:?})"
        );
    }

    #[test]
    fn keys_keep_unreserved_and_slashes() {
        check_key("plain/key-1_2.~txt", "plain/key-1_2.~txt");
        check_key("with space", "with%20space");
        check_key("a+b", "a%2Bb");
        check_key("100%", "100%25");
        check_key("a&b=c?d#e", "a%26b%3Dc%3Fd%23e");
        check_key("<tag>", "%3Ctag%3E");
        check_key("日本", "%E6%97%A5%E6%9C%AC");
        check_key("a//b", "a//b");
        check_key("a/./b/../c", "a/./b/../c");
        check_key("/leading", "/leading");
        check_key("", "");
    }

    #[test]
    fn components_encode_slash_plus_and_space() {
        check_component("a/b", "a%2Fb");
        check_component("a+b c", "a%2Bb%20c");
        check_component("tok=\n", "tok%3D%0A");
    }

    #[test]
    fn form_decoding() {
        check_decode("a+b", Ok("a b"));
        check_decode("a%20b", Ok("a b"));
        check_decode("a%2Bb", Ok("a+b"));
        check_decode("%25", Ok("%"));
        check_decode("%E6%97%A5", Ok("日"));
        check_decode("%e6%97%a5", Ok("日"));
        check_decode("plain", Ok("plain"));
        check_decode("%", Err("bad percent-escape in url-encoded value '%'"));
        check_decode("%G1", Err("bad percent-escape in url-encoded value '%G1'"));
        check_decode("%FF", Err("url-encoded value '%FF' is not UTF-8 once decoded"));
    }
}
