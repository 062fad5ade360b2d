//! What a call leaves behind: one log line, the metrics and the migration usage, all read
//! from the call's facts ([`Arrival`], and [`Call`] once the envelope was read) and its
//! [`Outcome`]. Labels are bounded: only an organisation the door decided is a label.

use super::Converter;
use super::call::{Arrival, Call};
use super::core::Outcome;
use crate::observe::metrics::CallRecord;
use crate::observe::usage::UsageCall;
use crate::soap::SoapVersion;

impl Converter {
    /// Records a call that ended with `outcome`; `call` is none when it was refused before
    /// its envelope could be read.
    pub fn record(&self, arrival: &Arrival<'_>, call: Option<&Call<'_>>, outcome: &Outcome) {
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
            fault_code: outcome.fault_code,
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
                fault: outcome.fault_code,
                own_micros: own.as_micros() as u64,
            },
            jiff::Timestamp::now(),
        );
        tracing::info!(
            service,
            operation,
            soap_version = version,
            organisation = %format_args!("{org_type}:{org_code}"),
            outcome = if outcome.fault_code.is_some() { "fault" } else { "ok" },
            fault = outcome.fault_code.unwrap_or(0),
            status = outcome.status,
            total_micros = total.as_micros() as u64,
            upstream_micros = upstream.as_micros() as u64,
            request_id = %format_args!("{}", trace.trace_id()),
            "soap call"
        );
    }
}
