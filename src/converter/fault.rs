//! Why a call did not produce a response, and the one place such a failure becomes a SOAP
//! fault (`fault_for`): its codes, its side and its HTTP status.

use crate::catalog::Fejl;
use crate::soap::write::{self, Side, WsaReply};
use crate::soap::{SoapError, SoapVersion};
use crate::upstream::UpstreamError;

/// Why a call did not produce a response: a fault to send, in terms of codes and side.
#[derive(Debug)]
pub enum Failure {
    Soap(SoapError),
    /// REST refused, with its own code and text (rule 3: passed on byte for byte).
    Rest {
        status: u16,
        fejlkode: u32,
        fejltekst: String,
    },
    Upstream(UpstreamError),
    /// A 2xx answer of `operation_id` that is not the JSON it should be: an upstream error
    /// of that operation (counted as one), answered as `Upstream`.
    Answer {
        operation_id: String,
        error: UpstreamError,
    },
    /// A refusal the converter makes itself after decoding, with detail for the fault string.
    Own(Fejl, Option<String>),
    /// A write that may have reached REST, whose answer did not come back whole (the
    /// connection broke or the deadline passed after it was sent, or its 2xx could not be
    /// read): whether the registration exists is unknown (900523). The failure inside says
    /// what happened.
    OutcomeUnknown(Box<Failure>),
}

impl Failure {
    /// A failure of the upstream side (as logged, apart from refusals).
    pub fn upstream(&self) -> Option<&UpstreamError> {
        match self {
            Failure::Upstream(e) | Failure::Answer { error: e, .. } => Some(e),
            Failure::OutcomeUnknown(inner) => inner.upstream(),
            _ => None,
        }
    }

    /// This failure of a write's exchange (its REST call and the reading of its answer), as
    /// the caller must know it: if the request may have arrived (a connection broken or a
    /// deadline passed after it was sent, or a gateway's 5xx page instead of REST's answer),
    /// whether the registration exists is unknown.
    /// Failures before it left, and REST's own answers, stay what they are.
    pub fn of_write(self) -> Failure {
        match self {
            Failure::Upstream(UpstreamError::Broken(_) | UpstreamError::Timeout { sent: true }) => {
                Failure::OutcomeUnknown(Box::new(self))
            }
            // A gateway's 5xx page: it may have passed the request on before it failed.
            Failure::Upstream(UpstreamError::Status(status, _)) if status >= 500 => {
                Failure::OutcomeUnknown(Box::new(self))
            }
            other => other,
        }
    }
}

/// The catalogue's code, text and side of one of the converter's own errors.
fn own(fejl: Fejl) -> (u32, &'static str, Side) {
    let e = fejl.entry();
    let side = if e.status >= 500 {
        Side::Server
    } else {
        Side::Client
    };
    (e.code, e.text.as_str(), side)
}

/// The one place a failure becomes a fault: its HTTP status, its first error code and the
/// fault's bytes, in `version`.
pub fn fault_for(
    version: SoapVersion,
    failure: &Failure,
    wsa: Option<&WsaReply<'_>>,
) -> (u16, u32, Vec<u8>) {
    let (code, text, side, suffix): (u32, &str, Side, Option<&str>) = match failure {
        Failure::Soap(e) => {
            let (c, t, s) = own(e.fejl);
            (c, t, s, e.detail.as_deref())
        }
        Failure::Own(f, detail) => {
            let (c, t, s) = own(*f);
            (c, t, s, detail.as_deref())
        }
        Failure::Rest {
            status,
            fejlkode,
            fejltekst,
        } => {
            let side = if *status >= 500 {
                Side::Server
            } else {
                Side::Client
            };
            (*fejlkode, fejltekst.as_str(), side, None)
        }
        Failure::Upstream(e) | Failure::Answer { error: e, .. } => {
            let f = match e {
                UpstreamError::Timeout { .. } => Fejl::UpstreamTimeout,
                UpstreamError::Unreachable(_) | UpstreamError::Broken(_) => {
                    Fejl::UpstreamUtilgaengelig
                }
                UpstreamError::Invalid(_) | UpstreamError::Status(..) => Fejl::UpstreamUgyldigtSvar,
            };
            let (c, t, s) = own(f);
            (c, t, s, None)
        }
        Failure::OutcomeUnknown(_) => {
            let (c, t, s) = own(Fejl::UpstreamUdfaldUkendt);
            (c, t, s, None)
        }
    };
    // SOAP 1.1: every fault is HTTP 500. SOAP 1.2: 400 for Sender, 500 for Receiver.
    let status = match (version, side) {
        (SoapVersion::V12, Side::Client) => 400,
        _ => 500,
    };
    // The fault string is the first error's text (the contract); a converter fault with a
    // detail carries it in both, after the catalogue text.
    let text = match suffix {
        Some(s) => format!("{text}: {s}"),
        None => text.to_owned(),
    };
    (
        status,
        code,
        write::fault(version, side, &[(code, &text)], wsa),
    )
}
