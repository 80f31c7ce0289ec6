//! Restore filters against the real wire shapes of each API: placeholders split at
//! every position between fragments (decoded text split at every char boundary, each
//! fragment JSON-encoded the way providers do), and the resulting byte stream split at
//! every position between reads. What a client would assemble from the output must
//! equal the text with real values, and each event must come out as soon as it is in.

use super::*;
use crate::detect::pseudonymize::{Pseudonymizer, Scope};
use serde_json::{json, Value};

struct Fixture {
    restorer: Restorer,
    phone: String,
    id: String,
    pass: String,
}

const PHONE: &str = "13800138000";
const ID: &str = "11010519491231002X";
/// A value that needs escaping wherever it lands in JSON.
const PASS: &str = "pa\"ss\\wo\nrd";

fn fixture() -> Fixture {
    let p = Pseudonymizer::ephemeral();
    let mut issuer = p.issuer(Scope::user("alice"));
    let phone = issuer.issue("PHONE", PHONE.as_bytes()).unwrap();
    let id = issuer.issue("IDNUM", ID.as_bytes()).unwrap();
    let pass = issuer.issue("PASSWORD", PASS.as_bytes()).unwrap();
    Fixture {
        restorer: issuer.into_restorer(),
        phone,
        id,
        pass,
    }
}

fn headers(ct: &str, encoding: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, e.parse().unwrap());
    }
    h
}

/// Run `body` through a restorer in reads of the given sizes (cycled).
fn run(f: &Fixture, kind: ApiKind, h: &HeaderMap, body: &[u8], reads: &[usize]) -> Vec<u8> {
    let mut r = ResponseRestorer::new(f.restorer.clone(), kind, h, 1 << 20).expect("restorable");
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < body.len() {
        let n = reads[k % reads.len()].max(1).min(body.len() - i);
        r.push(&body[i..i + n], &mut out).unwrap();
        i += n;
        k += 1;
    }
    r.finish(&mut out).unwrap();
    out
}

/// Split `text` into fragments at the given char-boundary positions.
fn split_at<'a>(text: &'a str, cuts: &[usize]) -> Vec<&'a str> {
    let mut v = Vec::new();
    let mut from = 0;
    for &c in cuts {
        if c > from && c < text.len() && text.is_char_boundary(c) {
            v.push(&text[from..c]);
            from = c;
        }
    }
    v.push(&text[from..]);
    v
}

fn sse(events: &[(Option<&str>, Value)]) -> String {
    let mut s = String::new();
    for (name, data) in events {
        if let Some(n) = name {
            s.push_str(&format!("event: {n}\n"));
        }
        s.push_str(&format!("data: {data}\n\n"));
    }
    s
}

/// The JSON payloads of an SSE stream, as a client parses them (`[DONE]` skipped).
fn sse_payloads(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).expect("UTF-8 output");
    let mut v = Vec::new();
    for event in text.split("\n\n") {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() || data == ["[DONE]"] {
            continue;
        }
        v.push(serde_json::from_str(&data.join("\n")).unwrap_or_else(|e| panic!("{e}: {event}")));
    }
    v
}

// ---------------------------------------------------------------------------------
// OpenAI Chat Completions

fn chat_stream(content: &[&str], args: &[&str]) -> String {
    let base =
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"});
    let chunk = |choice: Value| {
        let mut c = base.clone();
        c["choices"] = json!([choice]);
        (None, c)
    };
    let mut ev = vec![chunk(
        json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}),
    )];
    for c in content {
        ev.push(chunk(
            json!({"index": 0, "delta": {"content": c}, "finish_reason": null}),
        ));
    }
    for (i, a) in args.iter().enumerate() {
        let mut call = json!({"index": 0, "function": {"arguments": a}});
        if i == 0 {
            call = json!({"index": 0, "id": "call_1", "type": "function", "function": {"name": "exec", "arguments": a}});
        }
        ev.push(chunk(
            json!({"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": null}),
        ));
    }
    ev.push(chunk(
        json!({"index": 0, "delta": {}, "finish_reason": "stop"}),
    ));
    let mut usage = base.clone();
    usage["choices"] = json!([]);
    usage["usage"] = json!({"prompt_tokens": 1});
    ev.push((None, usage));
    let mut s = sse(&ev);
    s.push_str("data: [DONE]\n\n");
    s
}

/// (content, tool-call name, tool-call arguments) as a client assembles them.
fn chat_assemble(out: &[u8]) -> (String, String, String) {
    let (mut content, mut name, mut args) = (String::new(), String::new(), String::new());
    for p in sse_payloads(out) {
        for ch in p["choices"].as_array().unwrap() {
            let d = &ch["delta"];
            content.push_str(d["content"].as_str().unwrap_or(""));
            for tc in d["tool_calls"].as_array().into_iter().flatten() {
                name.push_str(tc["function"]["name"].as_str().unwrap_or(""));
                args.push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
            }
        }
    }
    (content, name, args)
}

#[test]
fn chat_text_split_at_every_position_and_every_read() {
    let f = fixture();
    let text = format!("Call {} now; ID {}.", f.phone, f.id);
    let want = format!("Call {PHONE} now; ID {ID}.");
    let h = headers("text/event-stream", None);
    for cut in 0..=text.len() {
        let body = chat_stream(&split_at(&text, &[cut]), &[]);
        for reads in [&[usize::MAX][..], &[1], &[7, 3], &[64]] {
            let out = run(&f, ApiKind::ChatCompletions, &h, body.as_bytes(), reads);
            assert_eq!(chat_assemble(&out).0, want, "cut {cut} reads {reads:?}");
        }
    }
}

#[test]
fn chat_text_in_tiny_fragments() {
    let f = fixture();
    let text = format!("{}{} and {}", f.phone, f.id, f.phone);
    let cuts: Vec<usize> = (1..text.len()).collect(); // one byte per event
    let body = chat_stream(&split_at(&text, &cuts), &[]);
    let h = headers("text/event-stream", None);
    let out = run(&f, ApiKind::ChatCompletions, &h, body.as_bytes(), &[5]);
    assert_eq!(chat_assemble(&out).0, format!("{PHONE}{ID} and {PHONE}"));
}

#[test]
fn chat_tool_arguments_split_at_every_position() {
    let f = fixture();
    let args =
        json!({"command": format!("echo {} > out.txt && echo '{}'", f.phone, f.pass)}).to_string();
    let want = json!({"command": format!("echo {PHONE} > out.txt && echo '{PASS}'")});
    let h = headers("text/event-stream", None);
    for cut in 0..=args.len() {
        for cut2 in [cut + 1, cut + 5, args.len()] {
            let body = chat_stream(&[], &split_at(&args, &[cut, cut2]));
            let out = run(
                &f,
                ApiKind::ChatCompletions,
                &h,
                body.as_bytes(),
                &[usize::MAX],
            );
            let (_, name, got) = chat_assemble(&out);
            assert_eq!(name, "exec", "the tool name is never repeated");
            let got: Value =
                serde_json::from_str(&got).unwrap_or_else(|e| panic!("{e}: {got} (cut {cut})"));
            assert_eq!(got, want, "cut {cut}/{cut2}");
        }
    }
}

#[test]
fn non_streamed_chat_completion() {
    let f = fixture();
    let args = json!({"command": format!("echo {}", f.pass)}).to_string();
    let body = json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": format!("Your ID is {}", f.id),
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "exec", "arguments": args}}]},
        "finish_reason": "tool_calls"}], "usage": {"total_tokens": 3}})
    .to_string();
    let out = run(
        &f,
        ApiKind::ChatCompletions,
        &headers("application/json", None),
        body.as_bytes(),
        &[13],
    );
    let v: Value = serde_json::from_slice(&out).unwrap();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], format!("Your ID is {ID}"));
    let a: Value = serde_json::from_str(
        msg["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(a["command"], format!("echo {PASS}"));
    // Only the placeholders' spans changed.
    let plain = body.replace(&f.id, ID);
    assert!(std::str::from_utf8(&out)
        .unwrap()
        .starts_with(&plain[..plain.find("tool_calls").unwrap()]));
}

// ---------------------------------------------------------------------------------
// OpenAI Responses API

fn responses_stream(text: &[&str], args: &[&str]) -> String {
    let mut ev = vec![(
        Some("response.created"),
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "output": []}}),
    )];
    let mut seq = 1;
    let full_text: String = text.concat();
    for t in text {
        ev.push((Some("response.output_text.delta"), json!({"type": "response.output_text.delta", "sequence_number": seq, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": t, "logprobs": []})));
        seq += 1;
    }
    ev.push((Some("response.output_text.done"), json!({"type": "response.output_text.done", "sequence_number": seq, "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": full_text})));
    let full_args: String = args.concat();
    for a in args {
        seq += 1;
        ev.push((Some("response.function_call_arguments.delta"), json!({"type": "response.function_call_arguments.delta", "sequence_number": seq, "item_id": "fc_1", "output_index": 1, "delta": a})));
    }
    ev.push((Some("response.function_call_arguments.done"), json!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 1, "arguments": full_args})));
    ev.push((Some("response.completed"), json!({"type": "response.completed", "response": {"id": "resp_1", "output": [
        {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": full_text}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec", "arguments": full_args}]}})));
    sse(&ev)
}

#[test]
fn responses_api_text_and_arguments() {
    let f = fixture();
    let text = format!("Texting {} about {}", f.phone, f.id);
    let args = json!({"command": format!("printf '%s' {} > f", f.pass)}).to_string();
    let want_text = format!("Texting {PHONE} about {ID}");
    let want_args = json!({"command": format!("printf '%s' {PASS} > f")});
    let h = headers("text/event-stream", None);
    for cut in 0..=text.len().max(args.len()) {
        let body = responses_stream(&split_at(&text, &[cut]), &split_at(&args, &[cut]));
        let out = run(&f, ApiKind::Responses, &h, body.as_bytes(), &[9]);
        let (mut t, mut a) = (String::new(), String::new());
        for p in sse_payloads(&out) {
            match p["type"].as_str().unwrap() {
                "response.output_text.delta" => t.push_str(p["delta"].as_str().unwrap()),
                "response.function_call_arguments.delta" => {
                    a.push_str(p["delta"].as_str().unwrap())
                }
                "response.output_text.done" => assert_eq!(p["text"], want_text),
                "response.function_call_arguments.done" => {
                    assert_eq!(
                        serde_json::from_str::<Value>(p["arguments"].as_str().unwrap()).unwrap(),
                        want_args
                    )
                }
                "response.completed" => {
                    let o = &p["response"]["output"];
                    assert_eq!(o[0]["content"][0]["text"], want_text);
                    assert_eq!(
                        serde_json::from_str::<Value>(o[1]["arguments"].as_str().unwrap()).unwrap(),
                        want_args
                    );
                }
                _ => {}
            }
        }
        assert_eq!(t, want_text, "cut {cut}");
        assert_eq!(
            serde_json::from_str::<Value>(&a).unwrap(),
            want_args,
            "cut {cut}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Anthropic Messages

fn anthropic_stream(text: &[&str], json_parts: &[&str]) -> String {
    let mut ev = vec![
        (
            Some("message_start"),
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude"}}),
        ),
        (
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (Some("ping"), json!({"type": "ping"})),
    ];
    for t in text {
        ev.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})));
    }
    ev.push((
        Some("content_block_stop"),
        json!({"type": "content_block_stop", "index": 0}),
    ));
    ev.push((Some("content_block_start"), json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "exec", "input": {}}})));
    for j in json_parts {
        ev.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": j}})));
    }
    ev.push((
        Some("content_block_stop"),
        json!({"type": "content_block_stop", "index": 1}),
    ));
    ev.push((Some("message_delta"), json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 5}})));
    ev.push((Some("message_stop"), json!({"type": "message_stop"})));
    sse(&ev)
}

#[test]
fn anthropic_text_and_input_json_split_everywhere() {
    let f = fixture();
    let text = format!("I'll text {} now.", f.phone);
    let input = json!({"command": format!("echo {} {}", f.id, f.pass)}).to_string();
    let want_text = format!("I'll text {PHONE} now.");
    let want_input = json!({"command": format!("echo {ID} {PASS}")});
    let h = headers("text/event-stream; charset=utf-8", None);
    for cut in 0..=text.len().max(input.len()) {
        let body = anthropic_stream(&split_at(&text, &[cut]), &split_at(&input, &[cut, cut + 3]));
        let out = run(&f, ApiKind::Messages, &h, body.as_bytes(), &[11, 2]);
        let text_out = std::str::from_utf8(&out).unwrap();
        let mut blocks: Vec<String> = vec![String::new(), String::new()];
        let mut stopped = [false, false];
        for event in text_out.split("\n\n").filter(|e| !e.is_empty()) {
            let name = event
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .expect("every event keeps its name");
            let data: Value = serde_json::from_str(
                event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(data["type"], name, "event name matches its payload");
            let i = data["index"].as_u64().unwrap_or(0) as usize;
            if name == "content_block_delta" {
                assert!(!stopped[i], "no delta after its block stopped (cut {cut})");
                let d = &data["delta"];
                blocks[i].push_str(d["text"].as_str().or(d["partial_json"].as_str()).unwrap());
            }
            if name == "content_block_stop" {
                stopped[i] = true;
            }
        }
        assert_eq!(blocks[0], want_text, "cut {cut}");
        assert_eq!(
            serde_json::from_str::<Value>(&blocks[1]).unwrap(),
            want_input,
            "cut {cut}"
        );
    }
}

/// Anthropic models on Vertex AI (`…:streamRawPredict`) answer in the Messages SSE shape
/// under a path that names no API: the generic classification follows `delta`s too.
#[test]
fn anthropic_on_vertex_stream_raw_predict() {
    let f = fixture();
    let kind = ApiKind::from_path(
        "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude:streamRawPredict",
    );
    assert_eq!(kind, ApiKind::Generic);
    let text = format!("I'll text {} now.", f.phone);
    let input = json!({"command": format!("echo {}", f.pass)}).to_string();
    for cut in 0..=text.len().max(input.len()) {
        let body = anthropic_stream(&split_at(&text, &[cut]), &split_at(&input, &[cut]));
        let out = run(
            &f,
            kind,
            &headers("text/event-stream", None),
            body.as_bytes(),
            &[13],
        );
        let (mut t, mut a) = (String::new(), String::new());
        for p in sse_payloads(&out) {
            if p["type"] == "content_block_delta" {
                t.push_str(p["delta"]["text"].as_str().unwrap_or(""));
                a.push_str(p["delta"]["partial_json"].as_str().unwrap_or(""));
            }
        }
        assert_eq!(t, format!("I'll text {PHONE} now."), "cut {cut}");
        assert_eq!(
            serde_json::from_str::<Value>(&a).unwrap(),
            json!({"command": format!("echo {PASS}")}),
            "cut {cut}"
        );
    }
}

#[test]
fn anthropic_non_streamed() {
    let f = fixture();
    let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "content": [
        {"type": "text", "text": format!("Calling {}", f.phone)},
        {"type": "tool_use", "id": "toolu_1", "name": "exec", "input": {"command": format!("echo {}", f.pass)}}],
        "stop_reason": "tool_use"})
    .to_string();
    let out = run(
        &f,
        ApiKind::Messages,
        &headers("application/json", None),
        body.as_bytes(),
        &[1000],
    );
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["content"][0]["text"], format!("Calling {PHONE}"));
    assert_eq!(v["content"][1]["input"]["command"], format!("echo {PASS}"));
}

// ---------------------------------------------------------------------------------
// Gemini

fn gemini_chunks(text: &[&str]) -> Vec<Value> {
    let n = text.len();
    text.iter()
        .enumerate()
        .map(|(i, t)| {
            let mut cand = json!({"content": {"parts": [{"text": t}], "role": "model"}, "index": 0});
            if i + 1 == n {
                cand["finishReason"] = json!("STOP");
            }
            json!({"candidates": [cand], "usageMetadata": {"promptTokenCount": 3}, "modelVersion": "gemini-x"})
        })
        .chain([json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "exec", "args": {"command": "echo PLACEHOLDER"}}}], "role": "model"}, "index": 0}]})])
        .collect()
}

fn gemini_text(chunks: &[Value]) -> (String, Vec<String>) {
    let mut t = String::new();
    let mut calls = Vec::new();
    for c in chunks {
        for p in c["candidates"][0]["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            t.push_str(p["text"].as_str().unwrap_or(""));
            if let Some(cmd) = p["functionCall"]["args"]["command"].as_str() {
                calls.push(cmd.to_string());
            }
        }
    }
    (t, calls)
}

#[test]
fn gemini_sse_and_json_array_streams() {
    let f = fixture();
    let text = format!("Number {} and ID {}", f.phone, f.id);
    let want = format!("Number {PHONE} and ID {ID}");
    let call = format!("echo {}", f.pass);
    for cut in 0..=text.len() {
        let mut chunks = gemini_chunks(&split_at(&text, &[cut, cut + 2]));
        let last = chunks.len() - 1;
        chunks[last]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"]["command"] =
            json!(call);
        // alt=sse
        let body = sse(&chunks.iter().map(|c| (None, c.clone())).collect::<Vec<_>>());
        let out = run(
            &f,
            ApiKind::GeminiStream,
            &headers("text/event-stream", None),
            body.as_bytes(),
            &[17],
        );
        let (t, calls) = gemini_text(&sse_payloads(&out));
        assert_eq!(t, want, "sse cut {cut}");
        assert_eq!(calls, [format!("echo {PASS}")]);
        // A JSON array, element by element (the default without alt=sse).
        let body = format!(
            "[{}]",
            chunks
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",\r\n")
        );
        let out = run(
            &f,
            ApiKind::GeminiStream,
            &headers("application/json; charset=UTF-8", None),
            body.as_bytes(),
            &[5, 50],
        );
        let arr: Vec<Value> = serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
        let (t, calls) = gemini_text(&arr);
        assert_eq!(t, want, "array cut {cut}");
        assert_eq!(calls, [format!("echo {PASS}")]);
    }
}

// ---------------------------------------------------------------------------------
// Latency: nothing waits that cannot hold a placeholder

#[test]
fn events_without_placeholders_are_never_held() {
    let f = fixture();
    let h = headers("text/event-stream", None);
    let mut r =
        ResponseRestorer::new(f.restorer.clone(), ApiKind::ChatCompletions, &h, 1 << 20).unwrap();
    let texts = [
        "Hello", " world, ", "Call ", "me at C", "G_PHO", "NE soon", " bye.",
    ];
    let mut sent = String::new();
    for t in texts {
        let ev = format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": {"content": t}}]})
        );
        let mut out = Vec::new();
        // Even split into reads, the event comes out when its last byte arrives.
        let (a, b) = ev.as_bytes().split_at(ev.len() / 2);
        r.push(a, &mut out).unwrap();
        assert!(out.is_empty(), "nothing from half an event");
        r.push(b, &mut out).unwrap();
        assert!(
            !out.is_empty(),
            "the event is out as soon as it is complete: {t:?}"
        );
        sent.push_str(&chat_assemble(&out).0);
        // What is held is exactly a possible placeholder start, nothing more.
        let all = texts[..=texts.iter().position(|x| *x == t).unwrap()].concat();
        let held = all.len() - sent.len();
        assert_eq!(
            held,
            crate::detect::pseudonymize::placeholder::partial_suffix_len(all.as_bytes()),
            "{t:?}"
        );
    }
    let mut out = Vec::new();
    r.finish(&mut out).unwrap();
    sent.push_str(&chat_assemble(&out).0);
    assert_eq!(
        sent,
        texts.concat(),
        "an unknown look-alike passes through whole"
    );
}

#[test]
fn untouched_events_are_byte_identical() {
    let f = fixture();
    let body = chat_stream(&["Hello ", "there, ", "no secrets"], &[]);
    let out = run(
        &f,
        ApiKind::ChatCompletions,
        &headers("text/event-stream", None),
        body.as_bytes(),
        &[3],
    );
    assert_eq!(out, body.as_bytes());
    // CRLF framing, comments and multi-line data survive too.
    let odd =
        ": keep-alive\r\n\r\nevent: x\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata: [DONE]\r\n\r\n";
    let out = run(
        &f,
        ApiKind::ChatCompletions,
        &headers("text/event-stream", None),
        odd.as_bytes(),
        &[1],
    );
    assert_eq!(out, odd.as_bytes());
}

// ---------------------------------------------------------------------------------
// Fail-closed

#[test]
fn unknown_placeholders_and_other_scopes_pass_unchanged() {
    let f = fixture();
    let p = Pseudonymizer::ephemeral();
    let other = p
        .issuer(Scope::user("mallory"))
        .issue("PHONE", PHONE.as_bytes())
        .unwrap();
    let text = format!("{other} / CG_PHONE_aaaaaaaaaaaaa / {}", f.phone);
    let body = chat_stream(&[&text], &[]);
    let out = run(
        &f,
        ApiKind::ChatCompletions,
        &headers("text/event-stream", None),
        body.as_bytes(),
        &[4],
    );
    assert_eq!(
        chat_assemble(&out).0,
        format!("{other} / CG_PHONE_aaaaaaaaaaaaa / {PHONE}")
    );
    let mut r = ResponseRestorer::new(
        f.restorer.clone(),
        ApiKind::ChatCompletions,
        &headers("text/event-stream", None),
        1 << 20,
    )
    .unwrap();
    let mut out = Vec::new();
    r.push(body.as_bytes(), &mut out).unwrap();
    r.finish(&mut out).unwrap();
    assert_eq!(
        r.stats(),
        Stats {
            restored: 1,
            unknown: 2
        }
    );
}

#[test]
fn malformed_events_pass_unchanged() {
    let f = fixture();
    let bad = format!(
        "data: {{\"choices\": [{{\"delta\": {{\"content\": \"{} \n\ndata: not json {}\n\n",
        f.phone, f.phone
    );
    let out = run(
        &f,
        ApiKind::ChatCompletions,
        &headers("text/event-stream", None),
        bad.as_bytes(),
        &[3],
    );
    assert_eq!(out, bad.as_bytes());
    // A broken non-streamed document likewise.
    let bad = format!("{{\"content\": \"{}\"", f.phone);
    let out = run(
        &f,
        ApiKind::ChatCompletions,
        &headers("application/json", None),
        bad.as_bytes(),
        &[3],
    );
    assert_eq!(out, bad.as_bytes());
}

#[test]
fn binary_and_unknown_encodings_are_not_filtered() {
    let f = fixture();
    assert!(ResponseRestorer::new(
        f.restorer.clone(),
        ApiKind::Generic,
        &headers("image/png", None),
        1 << 20
    )
    .is_none());
    assert!(ResponseRestorer::new(
        f.restorer.clone(),
        ApiKind::Generic,
        &headers("application/json", Some("gzip, br")),
        1 << 20
    )
    .is_none());
    assert!(ResponseRestorer::new(
        f.restorer.clone(),
        ApiKind::Generic,
        &headers("application/json", Some("compress")),
        1 << 20
    )
    .is_none());
}

#[test]
fn oversized_whole_document_passes_unchanged() {
    let f = fixture();
    let body = json!({"content": format!("{} {}", f.phone, "x".repeat(5000))}).to_string();
    let mut r = ResponseRestorer::new(
        f.restorer.clone(),
        ApiKind::ChatCompletions,
        &headers("application/json", None),
        1000,
    )
    .unwrap();
    let mut out = Vec::new();
    r.push(body.as_bytes(), &mut out).unwrap();
    r.finish(&mut out).unwrap();
    assert_eq!(out, body.as_bytes());
}

// ---------------------------------------------------------------------------------
// Compression and text

fn compress(kind: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match kind {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Default::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data).unwrap();
            }
            out
        }
        "zstd" => zstd::encode_all(data, 3).unwrap(),
        _ => unreachable!(),
    }
}

#[test]
fn compressed_streams_are_decoded_and_restored() {
    let f = fixture();
    let text = format!("Call {} or {}", f.phone, f.id);
    let body = chat_stream(&split_at(&text, &[7, 12, 20]), &[]);
    for enc in ["gzip", "deflate", "br", "zstd"] {
        let h = headers("text/event-stream", Some(enc));
        let packed = compress(enc, body.as_bytes());
        for reads in [&[1][..], &[5, 17], &[usize::MAX]] {
            let r =
                ResponseRestorer::new(f.restorer.clone(), ApiKind::ChatCompletions, &h, 1 << 20)
                    .unwrap();
            let mut fixed = h.clone();
            fixed.insert(header::CONTENT_LENGTH, "1".parse().unwrap());
            r.fix_headers(&mut fixed);
            assert!(
                fixed.get(header::CONTENT_ENCODING).is_none()
                    && fixed.get(header::CONTENT_LENGTH).is_none()
            );
            let out = run(&f, ApiKind::ChatCompletions, &h, &packed, reads);
            assert_eq!(
                chat_assemble(&out).0,
                format!("Call {PHONE} or {ID}"),
                "{enc} {reads:?}"
            );
        }
    }
    // A corrupt body is an error, not silence.
    let h = headers("text/event-stream", Some("gzip"));
    let mut r =
        ResponseRestorer::new(f.restorer.clone(), ApiKind::ChatCompletions, &h, 1 << 20).unwrap();
    let mut out = Vec::new();
    assert!(r.push(b"definitely not gzip at all", &mut out).is_err());
}

#[test]
fn plain_text_and_ndjson() {
    let f = fixture();
    let text = format!("dial {} then {}", f.phone, f.pass);
    for cut in 0..text.len() {
        let out = run(
            &f,
            ApiKind::Generic,
            &headers("text/plain", None),
            text.as_bytes(),
            &[cut.max(1)],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("dial {PHONE} then {PASS}")
        );
    }
    // Ollama-style NDJSON streaming `message.content`.
    let t = format!("Hi {} there", f.phone);
    for cut in 0..=t.len() {
        let lines: String = split_at(&t, &[cut])
            .iter()
            .map(|p| format!("{}\n", json!({"model": "m", "message": {"role": "assistant", "content": p}, "done": false})))
            .chain([format!("{}\n", json!({"model": "m", "done": true}))])
            .collect();
        let out = run(
            &f,
            ApiKind::Generic,
            &headers("application/x-ndjson", None),
            lines.as_bytes(),
            &[3],
        );
        let got: String = std::str::from_utf8(&out)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["message"]["content"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert_eq!(got, format!("Hi {PHONE} there"), "cut {cut}");
    }
}

// ---------------------------------------------------------------------------------
// Property tests

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any text, any mixture of known placeholders, any fragmenting, any reads:
        /// the client assembles exactly the restored text, for text and for arguments.
        #[test]
        fn chat_stream_restores_exactly(
            pieces in prop::collection::vec((0usize..4, "[a-zA-Z \"\\\\\n{}éC_G]{0,6}"), 1..8),
            cuts in prop::collection::vec(0usize..120, 0..6),
            reads in prop::collection::vec(1usize..40, 1..4),
        ) {
            let f = fixture();
            let mut text = String::new();
            let mut want = String::new();
            for (which, filler) in &pieces {
                text.push_str(filler);
                want.push_str(filler);
                let (p, v) = match which { 0 => (&f.phone, PHONE), 1 => (&f.id, ID), 2 => (&f.pass, PASS), _ => continue };
                text.push_str(p);
                want.push_str(v);
            }
            let mut cuts = cuts.clone();
            cuts.sort_unstable();
            let h = headers("text/event-stream", None);
            let body = chat_stream(&split_at(&text, &cuts), &[]);
            let out = run(&f, ApiKind::ChatCompletions, &h, body.as_bytes(), &reads);
            prop_assert_eq!(chat_assemble(&out).0, want.clone());
            // The same text as a string inside tool-call arguments.
            let args = json!({"command": text}).to_string();
            let body = chat_stream(&[], &split_at(&args, &cuts));
            let out = run(&f, ApiKind::ChatCompletions, &h, body.as_bytes(), &reads);
            let got: Value = serde_json::from_str(&chat_assemble(&out).2).unwrap();
            prop_assert_eq!(got, json!({"command": want}));
        }

        /// The same for the other streamed formats: the Responses API and Anthropic
        /// Messages (text and tool-call arguments), Gemini over SSE and as a streamed
        /// JSON array (text), each cut into fragments and reads at random positions.
        #[test]
        fn other_stream_formats_restore_exactly(
            pieces in prop::collection::vec((0usize..4, "[a-zA-Z \"\\\\\n{}éC_G]{0,6}"), 1..8),
            cuts in prop::collection::vec(0usize..120, 0..6),
            reads in prop::collection::vec(1usize..40, 1..4),
        ) {
            let f = fixture();
            let (text, want) = mixed_text(&f, &pieces);
            let mut cuts = cuts.clone();
            cuts.sort_unstable();
            let args = json!({"command": text}).to_string();
            let want_args = json!({"command": want});
            let frags = split_at(&text, &cuts);
            let arg_frags = split_at(&args, &cuts);

            // Responses API.
            let body = responses_stream(&frags, &arg_frags);
            let out = run(&f, ApiKind::Responses, &headers("text/event-stream", None), body.as_bytes(), &reads);
            let (mut t, mut a) = (String::new(), String::new());
            for p in sse_payloads(&out) {
                match p["type"].as_str().unwrap_or("") {
                    "response.output_text.delta" => t.push_str(p["delta"].as_str().unwrap()),
                    "response.function_call_arguments.delta" => a.push_str(p["delta"].as_str().unwrap()),
                    _ => {}
                }
            }
            prop_assert_eq!(&t, &want);
            prop_assert_eq!(serde_json::from_str::<Value>(&a).unwrap(), want_args.clone());

            // Anthropic Messages.
            let body = anthropic_stream(&frags, &arg_frags);
            let out = run(&f, ApiKind::Messages, &headers("text/event-stream", None), body.as_bytes(), &reads);
            let (mut t, mut a) = (String::new(), String::new());
            for p in sse_payloads(&out) {
                if p["type"] == "content_block_delta" {
                    t.push_str(p["delta"]["text"].as_str().unwrap_or(""));
                    a.push_str(p["delta"]["partial_json"].as_str().unwrap_or(""));
                }
            }
            prop_assert_eq!(&t, &want);
            prop_assert_eq!(serde_json::from_str::<Value>(&a).unwrap(), want_args);

            // Gemini, SSE and JSON array.
            let chunks = gemini_chunks(&frags);
            let body = sse(&chunks.iter().map(|c| (None, c.clone())).collect::<Vec<_>>());
            let out = run(&f, ApiKind::GeminiStream, &headers("text/event-stream", None), body.as_bytes(), &reads);
            prop_assert_eq!(&gemini_text(&sse_payloads(&out)).0, &want);
            let body = format!("[{}]", chunks.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",\r\n"));
            let out = run(&f, ApiKind::GeminiStream, &headers("application/json", None), body.as_bytes(), &reads);
            let arr: Vec<Value> = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(&gemini_text(&arr).0, &want);
        }
    }

    /// Filler text with known placeholders in it, and the same with the real values.
    fn mixed_text(f: &Fixture, pieces: &[(usize, String)]) -> (String, String) {
        let mut text = String::new();
        let mut want = String::new();
        for (which, filler) in pieces {
            text.push_str(filler);
            want.push_str(filler);
            let (p, v) = match which {
                0 => (&f.phone, PHONE),
                1 => (&f.id, ID),
                2 => (&f.pass, PASS),
                _ => continue,
            };
            text.push_str(p);
            want.push_str(v);
        }
        (text, want)
    }
}
