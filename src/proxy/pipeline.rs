//! The order of the phases, and nothing else.
//!
//! ```text
//! authenticate → CONNECT? connect::open (route, then the tunnel's first byte decides)
//!              → route (host inspected before DNS, egress on resolved addresses,
//!                       authority integrity)
//!              → read body (timeouts, global budget) → inspect (pool) → rewrite
//!              → upstream → respond (101 only for a real WebSocket handshake; the
//!                                    response body filter hook)
//!              → finish (one log line, metrics, audit)
//! ```
//!
//! A phase either hands its result to the next or stops the request: with a
//! [`Refusal`] (turned into a response in one place, [`refuse`], with its reason logged
//! and audited) or with an answer of its own (a block from the engine).

use super::body::{self, Collected, Guarded, Prefixed, ProxyBody};
use super::connect::{self, PendingTunnel};
use super::ctx::{Conn, RequestCtx};
use super::headers::{is_websocket_handshake, join_cookies, strip_hop_by_hop};
use super::hygiene;
use super::inspect::{self, Inspected, ReadBody};
use super::refusal::Refusal;
use super::respond::{self, Handshake};
use super::route;
use super::state::ProxyState;
use super::upstream::{self, Outgoing};
use super::websocket;
use crate::audit::AuditEvent;
use crate::detect::engine::Verdict;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use tracing::Instrument;

/// Why a request did not go through to the origin.
pub(crate) enum Stop {
    /// Something went wrong or was refused: see [`refuse`].
    Refuse(Refusal),
    /// A phase answered the client itself (the engine's block answer).
    Answer(Box<Response<ProxyBody>>),
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Stop {
        Stop::Refuse(r)
    }
}

/// One request through every phase. Returns the response and, for a CONNECT, the
/// tunnel the connection layer serves once the client has our `200`.
pub(crate) async fn handle(
    state: Arc<ProxyState>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> (Response<ProxyBody>, Option<PendingTunnel>) {
    let mut ctx = RequestCtx::new(&state, conn, req.method().clone(), req.uri().clone());
    let span = tracing::info_span!("request", id = %ctx.id);
    let mut tunnel = None;
    let result = phases(&state, &mut ctx, req, &mut tunnel)
        .instrument(span.clone())
        .await;
    let resp = match result {
        Ok(r) => r,
        Err(Stop::Answer(r)) => *r,
        Err(Stop::Refuse(r)) => refuse(&state, &mut ctx, r),
    };
    let resp = span.in_scope(|| finish(&state, &mut ctx, resp));
    (resp, tunnel)
}

async fn phases(
    state: &Arc<ProxyState>,
    ctx: &mut RequestCtx,
    mut req: Request<Incoming>,
    tunnel: &mut Option<PendingTunnel>,
) -> Result<Response<ProxyBody>, Stop> {
    authenticate(ctx, req.headers()).await?;
    if req.method() == Method::CONNECT {
        let (resp, pending) = connect::open(state, ctx, req).await?;
        *tunnel = Some(pending);
        return Ok(resp);
    }
    let route = route::request(state, ctx, &req).await?;
    let websocket = is_websocket_handshake(req.method(), req.version(), req.headers());
    let handshake = websocket.then(|| Handshake {
        key: req.headers()[header::SEC_WEBSOCKET_KEY].clone(),
        // Taken before the request is consumed: resolves once our 101 reaches the client.
        client: hyper::upgrade::on(&mut req),
    });
    let (parts, incoming) = req.into_parts();
    let pq = parts.uri.path_and_query().cloned();
    let uri = route
        .target
        .uri(pq.as_ref())
        .ok_or(Refusal::BadRequest("unusable request target"))?;
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers, websocket);
    if parts.version == Version::HTTP_2 {
        join_cookies(&mut headers);
    }

    // Read body.
    let live = ctx.live.clone();
    let limits = body::BodyLimits::from_config(&live.cfg);
    let collected =
        body::read(incoming, live.cfg.max_inspect_bytes, &limits, &state.budget).await?;
    let (read, pass_body) = match collected {
        Collected::Complete { body, guard } => (
            ReadBody::Complete(body.clone()),
            Guarded::new(http_body_util::Full::new(body), guard)
                .map_err(|e| match e {})
                .boxed_unsync(),
        ),
        Collected::TooLarge {
            prefix,
            rest,
            guard,
        } => (
            ReadBody::TooLarge,
            Guarded::new(Prefixed::new(prefix, rest, limits.idle), guard).boxed_unsync(),
        ),
    };

    // Inspect, then rewrite.
    let inspected = inspect::run(state, ctx, &route, &parts.method, &uri, headers, &read).await?;
    drop(read);
    let out = rewrite(
        ctx,
        inspected,
        parts.method,
        pq,
        pass_body,
        websocket,
        state,
    )?;

    // Upstream, then respond.
    let resp = upstream::send(state, &live, &route, out).await?;
    let session = handshake.is_some().then(|| websocket::Session {
        state: state.clone(),
        live: live.clone(),
        route: route.clone(),
        request_id: ctx.id.clone(),
        client: ctx.conn.client,
        user: ctx.user.clone(),
        deflate: None,
    });
    let relay_span = tracing::Span::current();
    Ok(respond::respond(
        ctx,
        resp,
        handshake,
        move |client, server, headers| {
            let Some(mut session) = session else { return };
            session.deflate = websocket::negotiated_deflate(headers);
            tokio::spawn(
                async move {
                    match tokio::try_join!(client, server) {
                        Ok((c, s)) => websocket::relay(session, c, s).await,
                        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                    }
                    tracing::debug!("websocket closed");
                }
                .instrument(relay_span),
            );
        },
    )?)
}

/// The authenticate phase: requests inside a tunnel inherit the CONNECT's user.
async fn authenticate(ctx: &mut RequestCtx, headers: &http::HeaderMap) -> Result<(), Refusal> {
    if ctx.conn.tunnel.is_some() {
        return Ok(());
    }
    let Some(auth) = &ctx.live.auth else {
        return Ok(());
    };
    let presented = headers
        .get(header::PROXY_AUTHORIZATION)
        .map(|v| v.as_bytes());
    match auth.verify(presented, ctx.conn.client.ip()).await {
        Ok(user) => {
            ctx.user = Some(user);
            Ok(())
        }
        Err(crate::auth::Rejected::Invalid) => Err(Refusal::AuthRequired),
        Err(crate::auth::Rejected::Throttled { retry_after }) => Err(Refusal::AuthThrottled {
            retry_after_secs: retry_after.as_secs().max(1),
        }),
        Err(crate::auth::Rejected::Busy) => Err(Refusal::Busy("authentication queue full")),
    }
}

/// The rewrite phase: what inspection decided becomes the request that goes upstream
/// (unchanged, redacted) or an answer. Transformations of the answer are installed here
/// as `ctx.response_filter`.
fn rewrite(
    ctx: &mut RequestCtx,
    inspected: Inspected,
    method: Method,
    path_and_query: Option<http::uri::PathAndQuery>,
    original: ProxyBody,
    websocket: bool,
    state: &ProxyState,
) -> Result<Outgoing, Stop> {
    if let (Some(restorer), false) = (inspected.restore, websocket) {
        let path = path_and_query.as_ref().map_or("/", |p| p.path());
        ctx.response_filter = Some(Box::new(super::pseudonym::RestoreFilter::new(
            restorer,
            path,
            ctx.live.cfg.max_inspect_bytes,
            state.metrics.clone(),
        )));
    }
    let (headers, body) = match inspected.verdict {
        Verdict::Pass { would } => {
            ctx.note_would(would);
            (inspected.headers, original)
        }
        Verdict::Rewrite {
            headers: mut h,
            body: b,
        } => {
            strip_hop_by_hop(&mut h, websocket);
            (h, body::full(b))
        }
        Verdict::Respond(r) => return Err(Stop::Answer(Box::new(r.map(body::full)))),
    };
    Ok(Outgoing {
        method,
        path_and_query,
        headers,
        body,
        websocket,
    })
}

/// The one place a [`Refusal`] becomes a response: its class and text go to the log
/// line, the audit record and the metrics.
fn refuse(state: &ProxyState, ctx: &mut RequestCtx, r: Refusal) -> Response<ProxyBody> {
    // A failure after inspection keeps the policy's decision (the request was allowed,
    // then the origin failed); the reason says what happened.
    let decided = matches!(
        ctx.record.decision,
        "allow" | "redact" | "pseudonymize" | "would-block" | "would-redact" | "would-pseudonymize"
    );
    if !(decided && matches!(r, Refusal::Upstream { .. })) {
        ctx.record.decision = r.decision();
    }
    ctx.record.cause = Some(r.cause());
    ctx.record.reason = Some(format!("{}: {r}", r.class()));
    if let Refusal::Upstream { kind, .. } = &r {
        state.metrics.upstream_errors.inc(&[kind.as_str()], 1);
    }
    state.metrics.refusals.inc(&[r.class()], 1);
    let mut resp = r.response(&ctx.id);
    if ctx.conn.tunnel.is_none() && resp.status() == StatusCode::BAD_REQUEST {
        // A failed CONNECT or a misdirected request: the client is confused; close rather
        // than wait for its next request.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The audit/metrics phase: one log line per request, the counters, the audit record.
fn finish(
    state: &ProxyState,
    ctx: &mut RequestCtx,
    mut resp: Response<ProxyBody>,
) -> Response<ProxyBody> {
    if let Ok(v) = HeaderValue::from_str(&ctx.id) {
        resp.headers_mut()
            .entry("x-clawguard-request-id")
            .or_insert(v);
    }
    let user_label = ctx.user.as_deref().unwrap_or("-");
    let decision = ctx.record.decision;
    state.metrics.requests.inc(&[decision, user_label], 1);
    state.metrics.request_latency.observe(ctx.started.elapsed());
    // `reason`: the cause in a few stable words (what to filter on); `detail`: the text
    // the client got.
    let reason = ctx.record.cause.unwrap_or("-");
    let detail = ctx.record.reason.as_deref().unwrap_or("-");
    tracing::info!(client = %ctx.conn.client, user = user_label, method = %ctx.method,
        dest = %ctx.dest, status = resp.status().as_u16(), decision, reason, detail, "request");
    if ctx.auditing {
        let path = if ctx.method == Method::CONNECT {
            String::new()
        } else {
            let pq = ctx.uri.path_and_query().map_or("/", |p| p.as_str());
            hygiene::audit_path(ctx.live.engine.scanner(), pq, ctx.record.url_findings)
        };
        state.audit(AuditEvent {
            request_id: ctx.id.clone(),
            user: ctx.user.as_ref().map(|u| u.to_string()),
            client: ctx.conn.client.to_string(),
            method: ctx.method.to_string(),
            host: ctx.dest.clone(),
            path,
            decision: decision.to_string(),
            reason: ctx.record.reason.take(),
            cause: ctx.record.cause.map(str::to_string),
            findings: std::mem::take(&mut ctx.record.findings),
        });
    }
    resp
}
