//! `POST /wsb`: the REST service's WSB deliveries, turned into legacy WSRM messages and
//! queued. A 2xx means the messages are durably queued. So a crash before the answer only
//! makes REST deliver again, and the queue keeps each message once.

use std::net::IpAddr;

use super::route::{WsbEvent, message_identifier, shape};
use super::store::NewMessage;
use super::{Wsrm, now_ms};
use crate::door::Presented;

/// Who may deliver: the REST service's certificate (its CVR), or, in dev mode, anybody on
/// loopback (the embedded backend).
#[derive(Debug, Clone, Default)]
pub struct Senders {
    pub cvrs: Vec<String>,
    pub dev_loopback: bool,
}

impl Senders {
    /// Whether a connection that presented `presented` from `peer` may deliver.
    pub fn allows(&self, presented: &Presented, peer: Option<IpAddr>) -> bool {
        match presented {
            Presented::Certificate(id) if self.cvrs.contains(&id.cvr) => true,
            _ => self.dev_loopback && peer.is_some_and(|p| p.is_loopback()),
        }
    }
}

/// Why a delivery was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Not a WSB event this converter can read (4xx: REST parks it in the end).
    #[error("not a WSB event: {0}")]
    Invalid(String),
    /// The queue could not take it (5xx: REST delivers again).
    #[error("the queue store: {0}")]
    Store(String),
}

/// Routes, shapes and queues one delivered event (blocking: the store is SQLite); answers
/// how many messages were new.
pub fn accept(wsrm: &Wsrm, body: &[u8]) -> Result<usize, Refused> {
    let ev: WsbEvent = serde_json::from_slice(body).map_err(|e| {
        wsrm.metrics.wsrm_received("invalid");
        // serde's message can quote a value (a CPR): say where, not what.
        Refused::Invalid(format!("JSON (line {}, column {})", e.line(), e.column()))
    })?;
    let received = now_ms();
    let mut messages = Vec::new();
    for (i, kind) in wsrm.routing.route(wsrm.catalog, &ev, &wsrm.subscribers) {
        let subscriber = wsrm.subscribers[i].key();
        let id = message_identifier(ev.besked_id, &subscriber, kind);
        let fields = shape(&ev, kind, id).map_err(|e| {
            wsrm.metrics.wsrm_received("invalid");
            Refused::Invalid(format!("sekvens {}: {e}", ev.sekvens))
        })?;
        messages.push(NewMessage {
            subscriber,
            kind,
            besked_id: ev.besked_id,
            message_identifier: id,
            fields,
            received_ms: received,
        });
    }
    let new = wsrm
        .store
        .enqueue(&messages)
        .map_err(|e| Refused::Store(e.to_string()))?;
    wsrm.metrics.wsrm_received(if messages.is_empty() {
        "not_routed"
    } else {
        "queued"
    });
    wsrm.metrics.wsrm_queued(new);
    tracing::debug!(sekvens = ev.sekvens, entitet = %ev.entitet, messages = messages.len(), new, "WSB event queued for WSRM");
    Ok(new)
}
