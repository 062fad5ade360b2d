//! One SOAP call's facts, each found once and handed to every phase (pingora's per-request
//! `CTX`): what the front knows when a request arrives ([`Arrival`]), and what the envelope
//! and the door add ([`Call`]). Neither is changed after it is built; the log line, the
//! metrics and the usage record read them.

use super::fault::Failure;
use crate::catalog::Fejl;
use crate::cutover::Cutover;
use crate::door::{Door, Presented, Refusal};
use crate::mapping::{OpPlan, ServicePlan};
use crate::soap::envelope::Envelope;
use crate::soap::{SoapVersion, version_and_action};
use crate::upstream::{Identity, Trace};

/// A request as the front received it, before its body is read: its service, its SOAP
/// version and action (from the headers, decided here once), its trace and deadline, and
/// what the connection presented.
pub struct Arrival<'a> {
    pub service: &'a ServicePlan,
    /// The version and action from `Content-Type` and `SOAPAction`; an error when the
    /// content type is not SOAP's (such a request is answered in SOAP 1.1).
    pub version: Result<(SoapVersion, Option<&'a str>), Fejl>,
    /// The trace id, when the call arrived, its deadline, and its upstream waits.
    pub trace: Trace,
    /// The TLS certificate, or a trusted proxy's forwarded one: the door decides on it.
    pub presented: Presented,
    /// `Content-Type` and `SOAPAction` as received, for a forward to a legacy service.
    pub content_type: &'a str,
    pub soap_action: Option<&'a str>,
    /// The converter's address as this client reaches it (`public_url`, or its Host and a
    /// trusted proxy's forwarded headers), where an answer must name an address (the WSRM
    /// inventory's ServiceEndpoint); set by the front only for the services that need it.
    pub base_url: Option<String>,
}

impl<'a> Arrival<'a> {
    pub fn new(
        service: &'a ServicePlan,
        content_type: &'a str,
        soap_action: Option<&'a str>,
        trace: Trace,
        presented: Presented,
    ) -> Arrival<'a> {
        Arrival {
            service,
            version: version_and_action(content_type, soap_action),
            trace,
            presented,
            content_type,
            soap_action,
            base_url: None,
        }
    }

    /// With the address the client reaches the converter at.
    pub fn with_base_url(mut self, base_url: Option<String>) -> Arrival<'a> {
        self.base_url = base_url;
        self
    }

    /// The SOAP version a refusal is written in: the request's, or 1.1 for a content type
    /// that is not SOAP's.
    pub fn answer_version(&self) -> SoapVersion {
        self.version.map_or(SoapVersion::V11, |(v, _)| v)
    }
}

/// A decoded call: the arrival, the operation, the door's decision and the cutover's. Built
/// once, by [`Call::new`], from the envelope.
pub struct Call<'a> {
    pub arrival: &'a Arrival<'a>,
    pub version: SoapVersion,
    pub op: &'a OpPlan,
    /// The texts of `op.inputs` as the envelope had them.
    pub values: Vec<Option<String>>,
    /// The request's `wsa:MessageID`, if any.
    pub message_id: Option<String>,
    /// The door's decision (`door::Door::decide`, the one place it is made): the identity
    /// sent upstream, or why the call is refused.
    pub identity: Result<Identity, Refusal>,
    /// The organisation the door decided the call is made for, type normalised: the
    /// metrics' and usage's key. None for a refused or incomplete claim (a refused claim is
    /// not anybody's call on the dashboard).
    pub organisation: Option<(u8, String)>,
    /// Whether the decided caller is past its cutover (none when refused): after it, reads
    /// make no REST call for the KG/PC collections.
    pub past_cutover: Option<bool>,
}

impl<'a> Call<'a> {
    /// The call an envelope makes, decided by `door` and `cutover` at `now`.
    pub fn new(
        arrival: &'a Arrival<'a>,
        env: Envelope<'a>,
        door: &Door,
        cutover: &Cutover,
        now: jiff::Timestamp,
    ) -> Call<'a> {
        let identity = match &env.metadata {
            None => Err(Refusal {
                fejl: Fejl::MetadataMangler,
                detail: None,
            }),
            Some(m) => door.decide(&arrival.presented, &m.claim()),
        };
        let organisation = identity.as_ref().ok().and_then(|who| {
            let t = env.metadata.as_ref()?.organisation_type?;
            Some((t, who.organisation_code.clone()))
        });
        let past_cutover = identity
            .as_ref()
            .ok()
            .map(|who| cutover.passed(&who.organisation_type, &who.organisation_code, now));
        Call {
            arrival,
            version: env.version,
            op: env.op,
            values: env.values,
            message_id: env.message_id,
            identity,
            organisation,
            past_cutover,
        }
    }

    pub fn trace(&self) -> &'a Trace {
        &self.arrival.trace
    }

    pub fn service(&self) -> &'a ServicePlan {
        self.arrival.service
    }

    /// The identity the door decided, or its refusal as the call's failure.
    pub fn who(&self) -> Result<&Identity, Failure> {
        self.identity
            .as_ref()
            .map_err(|r| Failure::Own(r.fejl, r.detail.clone()))
    }

    /// Whether reads fill the KG/PC collections from REST (before the caller's cutover).
    pub fn reads_rest(&self) -> bool {
        !self.past_cutover.unwrap_or(false)
    }
}
