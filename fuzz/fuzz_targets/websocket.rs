//! WebSocket frames (RFC 6455) as the proxy's relay reads them: a stream of frames parsed
//! header by header, unmasked, and inflated under a cap when RSV1 says compressed.
//! Properties: a header never claims more bytes than it read, every shorter prefix asks for
//! more bytes, and a frame the proxy writes parses back to its
//! payload.
#![no_main]

use clawguard::proxy::websocket::{apply_mask, frame, parse_header, Deflate, Inflater};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let deflate = sel & 1 != 0;
    let mut inflater = Inflater::new(Deflate {
        no_context_takeover: sel & 2 != 0,
    });
    while !rest.is_empty() {
        let head = match parse_header(rest, deflate) {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => break,
        };
        assert!(head.header_len <= rest.len());
        for k in 0..head.header_len {
            let short = parse_header(&rest[..k], deflate);
            assert_eq!(short, Ok(None), "prefix {k} of a valid header");
        }
        let body = &rest[head.header_len..];
        let n = (head.payload_len as usize).min(body.len());
        let mut payload = body[..n].to_vec();
        if let Some(m) = head.mask {
            apply_mask(&mut payload, m, 0);
        }
        if head.rsv1 {
            let _ = inflater.inflate(&payload, 64 * 1024);
        }
        // What the proxy writes for this payload reads back the same.
        let opcode = if head.is_control() { head.opcode } else { 0x2 };
        if !head.is_control() || payload.len() <= 125 {
            for to_server in [true, false] {
                let wire = frame(opcode, &payload, to_server);
                let h = parse_header(&wire, false)
                    .expect("own frame parses")
                    .expect("own frame complete");
                assert_eq!(h.payload_len as usize, payload.len());
                assert_eq!(h.mask.is_some(), to_server);
                let mut back = wire[h.header_len..].to_vec();
                if let Some(m) = h.mask {
                    apply_mask(&mut back, m, 0);
                }
                assert_eq!(back, payload);
            }
        }
        rest = &body[n..];
    }
});
