//! Property tests of the header-map decoding: whatever bytes a host hands over, decoding never
//! panics, and a well-formed map always decodes to exactly its pairs.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcp_trace_filter::host::abi::parse_header_pairs;
use mcp_trace_filter::request_headers::RequestHeaders;
use proptest::prelude::*;

/// The proxy-wasm serialisation of `pairs`.
fn serialise(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
    for (name, value) in pairs {
        out.extend((name.len() as u32).to_le_bytes());
        out.extend((value.len() as u32).to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend(name.as_bytes());
        out.push(0);
        out.extend(value.as_bytes());
        out.push(0);
    }
    out
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(":method".to_owned()),
        Just("content-type".to_owned()),
        Just("traceparent".to_owned()),
        Just("x-mcp-tool-name".to_owned()),
        "[a-z-]{1,12}",
    ]
}

proptest! {
    #[test]
    fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Some(pairs) = parse_header_pairs(&bytes) {
            let _ = RequestHeaders::from_pairs(pairs);
        }
    }

    #[test]
    fn well_formed_maps_round_trip(
        pairs in proptest::collection::vec((header_name(), "[ -~]{0,20}"), 0..12)
    ) {
        let bytes = serialise(&pairs);
        let decoded = parse_header_pairs(&bytes).expect("a well-formed map");
        let expected: Vec<(&str, &str)> =
            pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn the_first_value_of_a_header_wins(first in "[ -~]{0,20}", second in "[ -~]{0,20}") {
        let pairs = vec![
            ("traceparent".to_owned(), first.clone()),
            ("traceparent".to_owned(), second),
        ];
        let bytes = serialise(&pairs);
        let headers = RequestHeaders::from_pairs(parse_header_pairs(&bytes).expect("well formed"));
        prop_assert_eq!(headers.traceparent, Some(first));
    }
}
