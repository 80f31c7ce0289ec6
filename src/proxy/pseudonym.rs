//! The respond phase's restore filter for pseudonymized LLM API calls: the pure
//! [`ResponseRestorer`] of `detect::pseudonymize` behind the [`BodyFilter`] hook.
//! Installed by the rewrite phase only when inspection returned a restorer (an LLM API
//! call, same scope), so no other response is ever touched.

use super::respond::BodyFilter;
use crate::detect::pseudonymize::restore::{ApiKind, ResponseRestorer};
use crate::detect::pseudonymize::Restorer;
use crate::metrics::Metrics;
use bytes::Bytes;
use std::sync::Arc;

pub(crate) struct RestoreFilter {
    /// Until the head is seen: what to build the restorer from.
    pending: Option<(Restorer, ApiKind, usize)>,
    active: Option<ResponseRestorer>,
    /// A decoding failure: nothing more is sent (the client sees a truncated body
    /// rather than undecodable bytes under a removed `Content-Encoding`).
    failed: bool,
    metrics: Arc<Metrics>,
}

impl RestoreFilter {
    /// `path`: the request's path (which API answers); `whole_cap`: the largest
    /// non-streamed JSON answer restored (larger ones pass unchanged).
    pub fn new(
        restorer: Restorer,
        path: &str,
        whole_cap: usize,
        metrics: Arc<Metrics>,
    ) -> RestoreFilter {
        RestoreFilter {
            pending: Some((restorer, ApiKind::from_path(path), whole_cap)),
            active: None,
            failed: false,
            metrics,
        }
    }

    fn fail(&mut self, e: &dyn std::fmt::Display) {
        tracing::warn!(error = %e, "restoring placeholders in the answer failed; the rest of the body is dropped");
        self.failed = true;
    }
}

impl BodyFilter for RestoreFilter {
    fn on_head(&mut self, parts: &mut http::response::Parts) {
        if let Some((restorer, kind, cap)) = self.pending.take() {
            // A body that cannot hold restorable text (binary, unknown encoding) passes
            // untouched: placeholders in it stay as they are.
            self.active = ResponseRestorer::new(restorer, kind, &parts.headers, cap);
            if let Some(r) = &self.active {
                r.fix_headers(&mut parts.headers);
            }
        }
    }

    fn on_data(&mut self, data: Bytes) -> Bytes {
        if self.failed {
            return Bytes::new();
        }
        let Some(r) = self.active.as_mut() else {
            return data;
        };
        let mut out = Vec::with_capacity(data.len() + 64);
        match r.push(&data, &mut out) {
            Ok(()) => Bytes::from(out),
            Err(e) => {
                self.fail(&e);
                Bytes::from(out)
            }
        }
    }

    fn on_end(&mut self) -> Bytes {
        let Some(mut r) = self.active.take() else {
            return Bytes::new();
        };
        let mut out = Vec::new();
        if !self.failed {
            if let Err(e) = r.finish(&mut out) {
                self.fail(&e);
            }
        }
        let stats = r.stats();
        if stats.restored > 0 {
            self.metrics.placeholders.inc(&["restored"], stats.restored);
        }
        if stats.unknown > 0 {
            self.metrics.placeholders.inc(&["unknown"], stats.unknown);
        }
        Bytes::from(out)
    }
}
