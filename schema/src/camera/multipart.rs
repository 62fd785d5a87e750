//! Multipart bodies (RFC 2046) as cameras send them: Hikvision posts its alert XML with JPEG
//! parts as `multipart/form-data`, Dahua's event stream is `multipart/x-mixed-replace` with one
//! text part per event. Only what those need: parts split on the boundary, each with its
//! `Content-Type` and its bytes.

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    pub content_type: Option<String>,
    /// The `name` of a `Content-Disposition: form-data` part.
    pub name: Option<String>,
    pub body: &'a [u8],
}

/// The boundary a `Content-Type` header names, if it is a multipart type.
pub fn boundary(content_type: &str) -> Option<String> {
    let lower = content_type.to_ascii_lowercase();
    if !lower.trim_start().starts_with("multipart/") {
        return None;
    }
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

/// Splits `body` on `--boundary` lines. Text before the first boundary and after the closing
/// one is ignored, as RFC 2046 says.
pub fn parts<'a>(body: &'a [u8], boundary: &str) -> Vec<Part<'a>> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut starts = Vec::new();
    let mut i = 0;
    while i + d.len() <= body.len() {
        if &body[i..i + d.len()] == d && (i == 0 || body[i - 1] == b'\n') {
            starts.push(i);
            i += d.len();
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (n, &s) in starts.iter().enumerate() {
        let after = s + d.len();
        if body[after..].starts_with(b"--") {
            break;
        }
        let end = starts.get(n + 1).copied().unwrap_or(body.len());
        let mut chunk = &body[after..end];
        chunk = strip_line_end(chunk, true);
        // The line break before the next delimiter belongs to the delimiter.
        chunk = strip_line_end(chunk, false);
        let (head, content) = split_head(chunk);
        let mut part = Part {
            content_type: None,
            name: None,
            body: content,
        };
        for line in String::from_utf8_lossy(head).lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let k = k.trim();
            if k.eq_ignore_ascii_case("content-type") {
                part.content_type = Some(v.trim().to_ascii_lowercase());
            } else if k.eq_ignore_ascii_case("content-disposition") {
                part.name = v.split(';').find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
                });
            }
        }
        out.push(part);
    }
    out
}

fn strip_line_end(b: &[u8], front: bool) -> &[u8] {
    if front {
        b.strip_prefix(b"\r\n")
            .or_else(|| b.strip_prefix(b"\n"))
            .unwrap_or(b)
    } else {
        b.strip_suffix(b"\r\n")
            .or_else(|| b.strip_suffix(b"\n"))
            .unwrap_or(b)
    }
}

/// Headers and content of a part: they are separated by the first empty line.
fn split_head(chunk: &[u8]) -> (&[u8], &[u8]) {
    for (sep, len) in [(&b"\r\n\r\n"[..], 4), (&b"\n\n"[..], 2)] {
        if let Some(p) = chunk.windows(len).position(|w| w == sep) {
            return (&chunk[..p], &chunk[p + len..]);
        }
    }
    // A part that starts with an empty line has no headers.
    if let Some(rest) = chunk
        .strip_prefix(b"\r\n")
        .or_else(|| chunk.strip_prefix(b"\n"))
    {
        return (&[], rest);
    }
    (chunk, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_keep_their_type_name_and_bytes() {
        let body = b"preamble\r\n--XYZ\r\nContent-Disposition: form-data; name=\"linedetection\"\r\nContent-Type: application/xml\r\n\r\n<a/>\r\n--XYZ\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\x00\r\n--XYZ--\r\n";
        let p = parts(body, "XYZ");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name.as_deref(), Some("linedetection"));
        assert_eq!(p[0].content_type.as_deref(), Some("application/xml"));
        assert_eq!(p[0].body, b"<a/>");
        assert_eq!(p[1].body, b"\xff\xd8\xff\x00");
        assert_eq!(
            boundary("multipart/form-data; boundary=\"XYZ\"").as_deref(),
            Some("XYZ")
        );
        assert_eq!(boundary("application/xml"), None);
    }
}
