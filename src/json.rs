//! Small JSON writing helpers shared by the loader (which prepares text once) and the
//! expansion (which copies it): the body is a JSON string *holding* JSON, so text embedded in
//! it is escaped twice, and doing that once at load time keeps the hot path a `memcpy`.

/// Appends `text` as the content of a JSON string (no quotes): `"`, `\` and control
/// characters escaped, everything else (UTF-8 included) as it is.
pub fn push_escaped(out: &mut Vec<u8>, text: &[u8]) {
    let mut start = 0;
    for (i, &c) in text.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&text[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 15)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&text[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
}

/// Appends a well-formed JSON text, minified (no white space between tokens) and escaped as
/// the content of a JSON string, in one pass. The caller has checked that `json` parses.
pub fn push_minified_escaped(out: &mut Vec<u8>, json: &[u8]) {
    out.reserve(json.len() + json.len() / 4);
    let mut in_string = false;
    let mut run = 0;
    let mut i = 0;
    while i < json.len() {
        let c = json[i];
        let special = if in_string {
            c == b'"' || c == b'\\'
        } else {
            matches!(c, b'"' | b'\\' | b' ' | b'\n' | b'\r' | b'\t')
        };
        if !special {
            i += 1;
            continue;
        }
        out.extend_from_slice(&json[run..i]);
        match c {
            b'"' => {
                out.extend_from_slice(b"\\\"");
                in_string = !in_string;
            }
            b'\\' => {
                // An escape inside a string: both of its bytes are escaped again.
                out.extend_from_slice(b"\\\\");
                i += 1;
                if let Some(&next) = json.get(i) {
                    push_escaped(out, &[next]);
                }
            }
            _ => {} // white space between tokens
        }
        i += 1;
        run = i;
    }
    out.extend_from_slice(&json[run..]);
}

/// Appends an `f32` in its shortest form that reads back as the same `f32`
/// (`37.7499`, not the seed's widened `37.74990081787109`). Finite values only.
pub fn push_f32(out: &mut Vec<u8>, value: f32) {
    let mut buf = ryu::Buffer::new();
    out.extend_from_slice(buf.format_finite(value).as_bytes());
}

/// Appends an integer.
pub fn push_int<I: itoa::Integer>(out: &mut Vec<u8>, value: I) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(value).as_bytes());
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        let mut out = Vec::new();
        push_escaped(&mut out, b"a\"b\\c\nd\x01\xc3\xa9");
        assert_eq!(out, b"a\\\"b\\\\c\\nd\\u0001\xc3\xa9");
    }

    #[test]
    fn minifies_outside_strings_and_escapes() {
        let mut out = Vec::new();
        push_minified_escaped(&mut out, br#" [ {"a b": "c \" d\\" , "e":[1, 2]} ] "#);
        assert_eq!(out, br#"[{\"a b\":\"c \\\" d\\\\\",\"e\":[1,2]}]"#);
        // Unescaping once gives back the minified JSON, which parses to the same value.
        let once: String = serde_json::from_slice(&[b"\"", &out[..], b"\""].concat()).unwrap();
        let a: serde_json::Value = serde_json::from_str(&once).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"[{"a b":"c \" d\\","e":[1,2]}]"#).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn floats_are_shortest_f32() {
        let mut out = Vec::new();
        push_f32(&mut out, 37.7499);
        out.push(b' ');
        push_f32(&mut out, 25.0);
        assert_eq!(out, b"37.7499 25.0");
    }
}
