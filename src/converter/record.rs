//! What a call leaves behind: one log line, the metrics and the migration usage, all read
//! from the call's facts ([`Arrival`], and [`Call`] once the envelope was read) and its
//! [`Outcome`]. Labels are bounded: only an organisation the door decided is a label.

use super::Converter;
use super::Reply;
use super::call::{Arrival, Call};
use super::core::StreamEnd;
use crate::observe::metrics::CallRecord;
use crate::observe::usage::UsageCall;
use crate::soap::SoapVersion;

impl Converter {
    /// Records a call answered with `status` (and a fault's first code); `call` is none
    /// when it was refused before its envelope could be read.
    pub fn record(
        &self,
        arrival: &Arrival<'_>,
        call: Option<&Call<'_>>,
        status: u16,
        fault_code: Option<u32>,
    ) {
        // "-" when the content type named no SOAP version.
        let version = match arrival.version {
            Ok((SoapVersion::V11, _)) => "1.1",
            Ok((SoapVersion::V12, _)) => "1.2",
            Err(_) => "-",
        };
        let trace = &arrival.trace;
        let total = trace.started().elapsed();
        let upstream = trace.waited();
        let org = call
            .and_then(|c| c.organisation.as_ref())
            .map(|(t, c)| (*t, c.as_str()));
        let (org_type, org_code) = self.metrics.organisation(org);
        let operation = call.map_or("-", |c| c.op.name.as_str());
        let service = arrival.service.name.as_str();
        self.metrics.record_call(&CallRecord {
            service,
            operation,
            soap_version: version,
            organisation_type: org_type,
            organisation_code: org_code,
            fault_code,
            total,
            upstream,
            past_cutover: call.and_then(|c| c.past_cutover),
        });
        let own = total.saturating_sub(upstream);
        self.usage.record(
            &UsageCall {
                organisation_type: org_type,
                organisation_code: org_code,
                service,
                operation,
                fault: fault_code,
                own_micros: own.as_micros() as u64,
            },
            jiff::Timestamp::now(),
        );
        tracing::info!(
            service,
            operation,
            soap_version = version,
            organisation = %format_args!("{org_type}:{org_code}"),
            outcome = if fault_code.is_some() { "fault" } else { "ok" },
            fault = fault_code.unwrap_or(0),
            status,
            total_micros = total.as_micros() as u64,
            upstream_micros = upstream.as_micros() as u64,
            request_id = %format_args!("{}", trace.trace_id()),
            "soap call"
        );
    }
}

/// A call's record, made however the call ends: when its reply is known, or, dropped before
/// (the caller went away and actix dropped the call), as cancelled (logged, not counted as
/// an answer).
pub struct Pending<'c> {
    converter: &'c Converter,
    arrival: &'c Arrival<'c>,
    call: Option<&'c Call<'c>>,
    recorded: bool,
}

impl<'c> Pending<'c> {
    pub fn new(
        converter: &'c Converter,
        arrival: &'c Arrival<'c>,
        call: Option<&'c Call<'c>>,
    ) -> Pending<'c> {
        Pending {
            converter,
            arrival,
            call,
            recorded: false,
        }
    }

    /// The call was answered with `reply`.
    pub fn done(&mut self, reply: &Reply) {
        self.recorded = true;
        match reply {
            Reply::Whole(o) => {
                self.converter
                    .record(self.arrival, self.call, o.status, o.fault_code)
            }
            Reply::Streamed(StreamEnd::Complete) => {
                self.converter.record(self.arrival, self.call, 200, None)
            }
            Reply::Streamed(StreamEnd::Aborted(code)) => {
                tracing::warn!(
                    fault = code,
                    request_id = %self.arrival.trace.trace_id(),
                    "a streamed answer was cut off after its head"
                );
                self.converter
                    .record(self.arrival, self.call, 200, Some(*code))
            }
            Reply::Streamed(StreamEnd::Gone) => self.cancelled(),
        }
    }

    fn cancelled(&self) {
        tracing::info!(
            service = %self.arrival.service.name,
            operation = self.call.map_or("-", |c| c.op.name.as_str()),
            total_micros = self.arrival.trace.started().elapsed().as_micros() as u64,
            request_id = %self.arrival.trace.trace_id(),
            "soap call cancelled: the caller went away"
        );
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.cancelled();
        }
    }
}
