//! The request a piece of work serves, for the calls it makes to peers: its
//! `X-Request-Id` and its W3C trace context (`traceparent`) travel with every
//! call, so one request's log lines can be followed across processes.
//!
//! The request middleware sets it for the task that serves the request;
//! [`Context::current`] reads it anywhere below, without threading it through
//! every signature.

use std::future::Future;

tokio::task_local! {
    static CURRENT: Context;
}

/// The request id and trace of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub request_id: String,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// The trace flags of the caller, or `01` (sampled) for a new trace.
    flags: String,
    /// The caller's `Authorization`, passed on to the peers called on its
    /// behalf, so they check the caller, not this process.
    pub authorization: Option<Credentials>,
}

/// A credential, never shown: `Debug` prints no part of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials(pub String);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

impl Context {
    /// Continues the caller's trace if `traceparent` is valid, else starts one.
    pub fn new(request_id: String, traceparent: Option<&str>) -> Self {
        match traceparent.and_then(parse_traceparent) {
            Some((trace_id, flags)) => Self {
                request_id,
                trace_id: trace_id.to_owned(),
                flags: flags.to_owned(),
                authorization: None,
            },
            None => Self {
                request_id,
                trace_id: random_hex(16),
                flags: "01".to_owned(),
                authorization: None,
            },
        }
    }

    /// The context of the request this task serves, if it serves one.
    pub fn current() -> Option<Context> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `work` with this context as the current one.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// The `traceparent` of a call made on behalf of this request: the same
    /// trace, with a new span id for the call.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, random_hex(8), self.flags)
    }
}

/// `00-<trace id>-<parent id>-<flags>` (W3C Trace Context, version 00), with
/// neither id all zeros; later versions may append fields.
fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace_id, 32)
        && nonzero(trace_id)
        && hex(parent_id, 16)
        && nonzero(parent_id)
        && hex(flags, 2);
    valid.then_some((trace_id, flags))
}

/// `bytes` random bytes (at most 16) as lowercase hex.
fn random_hex(bytes: usize) -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    let hex = uuid::Uuid::new_v4().simple().encode_lower(&mut buffer);
    hex[..bytes * 2].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = Context::new("r".into(), Some(incoming));
        assert_eq!(context.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        let outgoing = context.traceparent();
        assert!(outgoing.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(outgoing.ends_with("-01"));
        assert_ne!(outgoing, incoming);
        assert_eq!(
            parse_traceparent(&outgoing).map(|p| p.0),
            Some(context.trace_id.as_str())
        );
    }

    #[test]
    fn a_broken_traceparent_starts_a_new_trace() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let context = Context::new("r".into(), Some(bad));
            assert_ne!(
                context.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736",
                "{bad}"
            );
            assert!(parse_traceparent(&context.traceparent()).is_some());
        }
    }
}
