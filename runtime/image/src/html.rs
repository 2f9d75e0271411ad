//! The two things the project's HTML pages (the main job's report, the study's experiment
//! pages) share: text escaped for element content and attribute values, and PNG pictures
//! inlined as base64, so a page can be mailed or archived as one file.

/// `s` safe inside an element or a double-quoted attribute value.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An `<img>` tag holding the PNG `bytes`, with `alt` escaped.
pub fn inline_png(bytes: &[u8], alt: &str) -> String {
    format!(
        "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
        escape(alt),
        base64(bytes)
    )
}

/// Standard base64 with padding (RFC 4648), for inlining PNGs.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn quotes_and_tags_are_escaped_in_alt_text() {
        let tag = inline_png(b"x", "a \"b\" <c> & d");
        assert!(
            tag.starts_with(
                "<img alt=\"a &quot;b&quot; &lt;c&gt; &amp; d\" src=\"data:image/png;base64,eA==\">"
            ),
            "{tag}"
        );
    }
}
