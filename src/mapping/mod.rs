//! The mapping language (`mappings/<Service>-<version>.toml`), its compilation into the
//! plan the request path looks things up in, and the checks: every mapping is verified
//! against its WSDL (`wsdl/`: elements exist, types fit, sequence order) and the REST
//! contract (`openapi/`: operations, parameters and fields exist, types fit, every required
//! field has a source). Compilation runs once at start; a wrong mapping stops the process
//! with the file and line. This module does no IO: it reads the embedded files, or the
//! texts it is given ([`compile_from`]).
//!
//! # Layout
//!
//! - `syntax`: the mapping files as written (serde types with spans); nothing checked.
//! - [`plan`]: the compiled [`Plan`] the request path uses.
//! - [`check`]: syntax + WSDL + OpenAPI → a [`Plan`] or every [`MappingError`].
//! - [`wsdl`], [`openapi`]: what the checks read from the two contracts.
//! - [`transform`]: the typed values (SOAP text ↔ canonical ↔ JSON).

pub mod check;
pub mod openapi;
pub mod plan;
mod syntax;
pub mod transform;
pub mod wsdl;

pub use check::{MappingError, OPENAPI_FILE, Sources, compile, compile_from};
pub use plan::{
    Arg, Behaviour, CallPlan, Codes, CollectionPlan, Input, OpPlan, OutField, OutSource, Plan,
    QueuePlan, QueueStep, ReadPart, ReadPlan, RestCall, ServicePlan, Source, Target, Unchanged,
};
pub use transform::{Canon, SoapValue, Transform};

#[cfg(test)]
mod tests {
    use super::*;

    /// The error cases are data: `tests/mapping_errors/` (run by `tests/mapping_errors.rs`).
    #[test]
    fn the_shipped_mappings_compile_into_a_plan_the_request_path_can_look_up() {
        let plan = compile().unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        let prs = plan.service("/PersonRegistrationService/9").unwrap();
        assert_eq!(prs.operations.len(), 5);
        let op = prs
            .by_action("urn:dk:star:dfdg:PersonRegistrationService:9/CreateContactGroup")
            .unwrap();
        assert_eq!(op.request_element, "CreateContactGroupRequest");
        assert!(op.input("ContactGroup/ContactGroupStartTime").is_some());
        let by_element = prs.by_request_element("CreateContactGroupRequest").unwrap();
        assert_eq!(by_element.action, op.action);
    }
}
