//! Legacy WSRM through the converter (issue 16): WSB events in, the old pull queues out.
//!
//! - `receiver`: `POST /wsb`. It takes the REST service's WSB deliveries, routes and shapes
//!   each event (`route`, from `mappings/wsrm-routing.toml`), queues the messages durably
//!   (`store`), and only then answers 2xx.
//! - `store`: the queue behind one interface ([`store::QueueStore`]). SQLite in the data dir
//!   by default.
//! - [`Wsrm`]: the operations of WsrmService v3 and WsrmMessageService v10, as the converter's
//!   `Behaviour::Queue` calls them.
//! - `subscribe`: at start, the converter's own WSB subscription at REST, as STAR.
//!
//! Only configured subscribers (`wsrm_subscriber`) get a queue. A message's
//! `MessageIdentifier` is derived from the WSB `beskedId`, the subscriber and the message
//! kind, so a redelivered event gives the same identifier, and the queue keeps it once.

pub mod receiver;
pub mod route;
pub mod store;
pub mod subscribe;

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::catalog::{Catalog, Fejl};
use store::{QueueError, QueueStore, StoredMessage};

/// The WsrmMessageService operations: the kinds of message a queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
pub enum MessageKind {
    GetContactGroupVersion5,
    GetContactGroupVersion4,
    GetPersonCategoryVersion1,
    GetCprChanged,
}

impl MessageKind {
    pub const ALL: [MessageKind; 4] = [
        MessageKind::GetContactGroupVersion5,
        MessageKind::GetContactGroupVersion4,
        MessageKind::GetPersonCategoryVersion1,
        MessageKind::GetCprChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::GetContactGroupVersion5 => "GetContactGroupVersion5",
            MessageKind::GetContactGroupVersion4 => "GetContactGroupVersion4",
            MessageKind::GetPersonCategoryVersion1 => "GetPersonCategoryVersion1",
            MessageKind::GetCprChanged => "GetCprChanged",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The response's collection and item elements.
    pub fn collection(self) -> (&'static str, &'static str) {
        match self {
            MessageKind::GetContactGroupVersion5 | MessageKind::GetContactGroupVersion4 => {
                ("ContactGroupMessageCollection", "ContactGroupMessage")
            }
            MessageKind::GetPersonCategoryVersion1 => {
                ("PersonCategoryMessageCollection", "PersonCategoryMessage")
            }
            MessageKind::GetCprChanged => ("CprChangedMessageCollection", "CprChangedMessage"),
        }
    }
}

/// A legacy subscriber: an organisation, and the kinds it wants (empty: every kind routing
/// gives it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub organisation_type: u8,
    pub organisation_code: String,
    pub messages: Vec<MessageKind>,
}

impl Subscriber {
    /// The queue's key and the metrics' label: `TYPE:CODE`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.organisation_type, self.organisation_code)
    }

    pub fn wants(&self, kind: MessageKind) -> bool {
        self.messages.is_empty() || self.messages.contains(&kind)
    }

    /// `TYPE:CODE` or `TYPE:CODE=KIND+KIND` (a flag's form).
    pub fn parse(spec: &str) -> Result<Subscriber, String> {
        let (who, kinds) = match spec.split_once('=') {
            Some((w, k)) => (w, Some(k)),
            None => (spec, None),
        };
        let (t, code) = who
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("{spec} is not TYPE:CODE"))?;
        let organisation_type = t
            .trim()
            .parse()
            .map_err(|_| format!("{spec}: {t} is not an organisation type"))?;
        let messages = match kinds {
            Some(k) => k
                .split('+')
                .map(|k| {
                    MessageKind::parse(k.trim())
                        .ok_or_else(|| format!("{spec}: {k} is not a WSRM message"))
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        Subscriber::new(organisation_type, code.trim(), messages)
    }

    /// A subscriber, its code checked (printable ASCII, 1-64 characters, as an organisation
    /// code anywhere).
    pub fn new(
        organisation_type: u8,
        code: &str,
        messages: Vec<MessageKind>,
    ) -> Result<Subscriber, String> {
        if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("{code:.20} is not an organisation code"));
        }
        Ok(Subscriber {
            organisation_type,
            organisation_code: code.to_owned(),
            messages,
        })
    }
}

/// How the queues behave (config `wsrm_*`).
#[derive(Debug, Clone)]
pub struct WsrmSettings {
    /// An unfinished sequence is released after this.
    pub sequence_timeout: Duration,
    /// Messages older than this are dropped.
    pub retention: Duration,
    /// The WsrmMessageService address the inventory names.
    pub message_endpoint: String,
}

/// Most messages one sequence reserves.
pub const MAX_SEQUENCE: usize = 500;

/// What a WSRM operation answers.
#[derive(Debug)]
pub enum QueueAnswer {
    Sequence {
        id: Uuid,
        inventory: Vec<(MessageKind, usize)>,
    },
    Messages(Vec<StoredMessage>),
    Done,
}

/// The legacy queues: subscribers, routing and the store.
pub struct Wsrm {
    pub subscribers: Vec<Subscriber>,
    pub routing: route::Routing,
    pub store: Arc<dyn QueueStore>,
    pub settings: WsrmSettings,
    pub catalog: &'static Catalog,
    pub metrics: Arc<crate::observe::metrics::Metrics>,
    /// Who may deliver WSB events to `POST /wsb`.
    pub senders: receiver::Senders,
}

impl std::fmt::Debug for Wsrm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wsrm")
            .field("subscribers", &self.subscribers)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Wsrm {
    /// The configured subscriber the caller is, if any.
    fn subscriber(&self, organisation_type: u8, code: &str) -> Result<&Subscriber, Fejl> {
        self.subscribers
            .iter()
            .find(|s| s.organisation_type == organisation_type && s.organisation_code == code)
            .ok_or(Fejl::WsrmIkkeAbonnent)
    }

    fn store_error(e: QueueError) -> Fejl {
        match e {
            QueueError::UnknownSequence => Fejl::WsrmUkendtSekvens,
            QueueError::Store(msg) => {
                tracing::error!(error = %msg, "WSRM queue store failed");
                Fejl::WsrmKoeFejl
            }
        }
    }

    /// One WSRM operation for the caller (blocking: the store is SQLite).
    pub fn run(
        &self,
        organisation_type: u8,
        code: &str,
        step: crate::mapping::QueueStep,
        sequence: Option<Uuid>,
    ) -> Result<QueueAnswer, Fejl> {
        use crate::mapping::QueueStep;
        let sub = self.subscriber(organisation_type, code)?;
        let key = sub.key();
        let seq = || sequence.ok_or(Fejl::WsrmUkendtSekvens);
        let now = now_ms();
        let timeout = millis(self.settings.sequence_timeout);
        match step {
            QueueStep::CreateSequence => {
                let (id, inventory) = self
                    .store
                    .create_sequence(&key, now, timeout, MAX_SEQUENCE)
                    .map_err(Self::store_error)?;
                Ok(QueueAnswer::Sequence { id, inventory })
            }
            QueueStep::Messages(kind) => Ok(QueueAnswer::Messages(
                self.store
                    .messages(&key, seq()?, kind, now, timeout)
                    .map_err(Self::store_error)?,
            )),
            QueueStep::TerminateSequence => {
                let n = self
                    .store
                    .terminate(&key, seq()?, now, timeout)
                    .map_err(Self::store_error)?;
                self.metrics.wsrm_delivered(&key, n);
                Ok(QueueAnswer::Done)
            }
            QueueStep::CloseSequence => {
                self.store
                    .close(&key, seq()?, now, timeout)
                    .map_err(Self::store_error)?;
                Ok(QueueAnswer::Done)
            }
        }
    }

    /// Drops messages past the retention and refreshes the queue gauges (every minute).
    pub fn housekeeping(&self) {
        let now = now_ms();
        match self.store.expire(now, millis(self.settings.retention)) {
            Ok(n) => self.metrics.wsrm_expired(n),
            Err(e) => tracing::warn!(error = %e, "WSRM: cannot drop old messages"),
        }
        self.refresh_gauges(now);
    }

    pub fn refresh_gauges(&self, now: i64) {
        match self.store.stats(now) {
            Ok(stats) => {
                for s in &self.subscribers {
                    let key = s.key();
                    let (depth, age) = stats
                        .iter()
                        .find(|st| st.subscriber == key)
                        .map_or((0, 0.0), |st| (st.depth, st.oldest_age_secs));
                    self.metrics.wsrm_queue(&key, depth, age);
                }
            }
            Err(e) => tracing::warn!(error = %e, "WSRM: cannot read the queue depth"),
        }
    }
}

/// A WSRM operation's SOAP response.
pub fn write_answer(
    version: crate::soap::SoapVersion,
    namespace: &str,
    element: &str,
    wsa: Option<&crate::soap::write::WsaReply<'_>>,
    message_endpoint: &str,
    answer: &QueueAnswer,
) -> Vec<u8> {
    use crate::soap::write::{Out, response};
    let seg = |s: &str| -> Vec<String> { s.split('/').map(str::to_owned).collect() };
    match answer {
        QueueAnswer::Done => response(version, namespace, element, &[], wsa),
        QueueAnswer::Sequence { id, inventory } => {
            let (sid, coll) = (seg("SequenceIdentifier"), seg("InventoryCollection"));
            let (name, url, count) = (
                seg("ServiceName"),
                seg("ServiceEndpoint"),
                seg("MessageCount"),
            );
            let items = inventory
                .iter()
                .map(|(kind, n)| {
                    vec![
                        (name.as_slice(), kind.as_str().to_owned()),
                        (url.as_slice(), message_endpoint.to_owned()),
                        (count.as_slice(), n.to_string()),
                    ]
                })
                .collect();
            let parts = [
                Out::Leaf(&sid, id.to_string()),
                Out::Collection {
                    path: &coll,
                    item: "Inventory",
                    items,
                },
            ];
            response(version, namespace, element, &parts, wsa)
        }
        QueueAnswer::Messages(messages) => {
            let (collection, item) = collection_of(element);
            let paths: Vec<Vec<Vec<String>>> = messages
                .iter()
                .map(|m| m.fields.iter().map(|(p, _)| seg(p)).collect())
                .collect();
            let items = messages
                .iter()
                .zip(&paths)
                .map(|(m, ps)| {
                    ps.iter()
                        .zip(&m.fields)
                        .map(|(p, (_, text))| (p.as_slice(), text.clone()))
                        .collect()
                })
                .collect();
            let coll = seg(collection);
            let parts = [Out::Collection {
                path: &coll,
                item,
                items,
            }];
            response(version, namespace, element, &parts, wsa)
        }
    }
}

/// The collection and item of a WsrmMessageService response element.
fn collection_of(response_element: &str) -> (&'static str, &'static str) {
    MessageKind::parse(response_element.trim_end_matches("Response"))
        .map_or(("", ""), MessageKind::collection)
}
