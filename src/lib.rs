//! # vos-converter
//!
//! A SOAP-to-REST compatibility converter for STAR's move of contact groups and person
//! categories from the legacy SOAP services (PersonRegistrationService v9,
//! PersonStatusService v20, PersonHistoryService v4) to the REST service VisiteringOgStatus
//! PersonVisiteringService v1, with a reference implementation of that REST service.
//!
//! # Layout
//!
//! - [`app`]: the one builder: the converter's parts from the configuration.
//! - [`cli`]: argument parsing and choosing the command (`backend`, `openapi`; `serve` and
//!   `check` come with the converter).
//! - [`vos`]: the REST contract (paths, headers, JSON types with OpenAPI schemas), shared by
//!   the converter (which calls it) and the backend (which serves it).
//! - [`backend`]: the reference REST service: handlers, business rules, access, SQLite store.
//! - [`catalog`]: `mappings/` data both sides share: error catalogue, code lists,
//!   organisation types. Validated at start.
//! - [`cpr`]: the CPR number, masked wherever it could be printed.
//! - [`dktime`]: Danish dates (Europe/Copenhagen) and the clock.
//! - [`observe`]: tracing setup with CPR redaction, Prometheus metrics, migration usage.
//! - [`door`]: who is calling: client certificates (OCES2/OCES3), connection agreements,
//!   the identity modes; the one place the caller is decided.
//! - [`tls`]: rustls for both programs: listeners that require client certificates and
//!   reload on SIGHUP, the client side of the hop to REST, the peer's certificate per
//!   connection.
//!
//! ARCHITECTURE.md has the request paths and the invariants.

pub mod app;
pub mod backend;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod converter;
pub mod cpr;
pub mod cutover;
pub mod dktime;
pub mod door;
pub mod embedded;
pub mod json;
pub mod json_stream;
pub mod mapping;
pub mod observe;
pub mod soap;
pub mod state;
pub mod tls;
pub mod upstream;
pub mod vos;
pub mod wsrm;
