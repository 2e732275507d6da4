//! The proxy-wasm ABI's encodings the host layer reads and writes. Pure, so it is tested
//! natively; only `hostcalls` (wasm) uses it.

/// Decodes a header map as proxy-wasm serialises it: a little-endian `u32` count, then a `u32`
/// name length and value length per pair, then each name and value followed by a NUL byte.
/// `None` when the bytes do not follow that layout; pairs that are not UTF-8 are skipped.
pub fn parse_header_pairs(bytes: &[u8]) -> Option<Vec<(&str, &str)>> {
    let count = read_u32(bytes, 0)?;
    let mut sizes_at = 4usize;
    let mut data_at = count.checked_mul(8)?.checked_add(4)?;
    // Each pair needs at least 8 size bytes and 2 NULs, so a count beyond that is a lie.
    if data_at > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = read_u32(bytes, sizes_at)?;
        let value_len = read_u32(bytes, sizes_at + 4)?;
        sizes_at += 8;
        let name = field(bytes, data_at, name_len)?;
        data_at += name_len + 1;
        let value = field(bytes, data_at, value_len)?;
        data_at += value_len + 1;
        if let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value)) {
            pairs.push((name, value));
        }
    }
    Some(pairs)
}

/// Encodes `(name, value)` pairs in the layout [`parse_header_pairs`] reads.
pub fn serialize_header_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let as_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let data: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend(as_u32(pairs.len()));
    for (name, value) in pairs {
        out.extend(as_u32(name.len()));
        out.extend(as_u32(value.len()));
    }
    for (name, value) in pairs {
        out.extend(name.as_bytes());
        out.push(0);
        out.extend(value.as_bytes());
        out.push(0);
    }
    out
}

/// Encodes a property path as proxy-wasm expects it: the segments joined by NUL bytes.
pub fn serialize_path(path: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.iter().map(|s| s.len() + 1).sum());
    for (index, segment) in path.iter().enumerate() {
        if index > 0 {
            out.push(0);
        }
        out.extend_from_slice(segment.as_bytes());
    }
    out
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    let value = u32::from_le_bytes(<[u8; 4]>::try_from(word).ok()?);
    usize::try_from(value).ok()
}

/// `len` bytes at `at`, which must be followed by a NUL.
fn field(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    let end = at.checked_add(len)?;
    if *bytes.get(end)? != 0 {
        return None;
    }
    bytes.get(at..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialise(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (name, value) in pairs {
            out.extend((name.len() as u32).to_le_bytes());
            out.extend((value.len() as u32).to_le_bytes());
        }
        for (name, value) in pairs {
            out.extend(*name);
            out.push(0);
            out.extend(*value);
            out.push(0);
        }
        out
    }

    #[test]
    fn decodes_the_serialised_map() {
        let bytes = serialise(&[(b":method", b"POST"), (b"x-empty", b""), (b"a", b"1")]);
        assert_eq!(
            parse_header_pairs(&bytes),
            Some(vec![(":method", "POST"), ("x-empty", ""), ("a", "1")])
        );
        assert_eq!(parse_header_pairs(&serialise(&[])), Some(vec![]));
    }

    #[test]
    fn serialised_pairs_decode_to_themselves() {
        let pairs = [
            ("content-type", "application/json"),
            ("x-empty", ""),
            ("a", "1"),
        ];
        let bytes = serialize_header_pairs(&pairs);
        assert_eq!(
            bytes,
            serialise(&pairs.map(|(n, v)| (n.as_bytes(), v.as_bytes())))
        );
        assert_eq!(parse_header_pairs(&bytes), Some(pairs.to_vec()));
    }

    #[test]
    fn paths_are_joined_by_nul() {
        assert_eq!(
            serialize_path(&["ngx", "nginx_version"]),
            b"ngx\0nginx_version"
        );
        assert_eq!(serialize_path(&["name"]), b"name");
        assert_eq!(serialize_path(&[]), b"");
    }

    #[test]
    fn skips_pairs_that_are_not_utf8() {
        let bytes = serialise(&[(b"x-bin", b"\xff\xfe"), (b"traceparent", b"v")]);
        assert_eq!(parse_header_pairs(&bytes), Some(vec![("traceparent", "v")]));
    }

    #[test]
    fn refuses_every_truncation_and_lying_lengths() {
        let bytes = serialise(&[(b"content-type", b"application/json"), (b"b", b"2")]);
        for cut in 0..bytes.len() {
            assert_eq!(parse_header_pairs(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut missing_nul = bytes.clone();
        let last = missing_nul.len() - 1;
        missing_nul[last] = b'x';
        assert_eq!(parse_header_pairs(&missing_nul), None);
        let mut huge_count = bytes.clone();
        huge_count[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_header_pairs(&huge_count), None);
        let mut huge_name = bytes;
        huge_name[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_header_pairs(&huge_name), None);
    }
}
