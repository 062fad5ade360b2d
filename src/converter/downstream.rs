//! Where a call's answer goes. Most answers are small and leave whole, with a
//! `Content-Length`, after the call is done (its status can still be a fault's). A read
//! (alone, or spliced into a legacy answer) whose SOAP grows past `threshold` bytes starts
//! its answer early instead: the head ([`Start`]) and what is written so far leave, then a
//! chunk each time the buffer fills again, while REST (and the legacy service) are still
//! sending, so the memory a call holds is bounded by the threshold, not by the answer. The front turns the pieces into an HTTP response.
//!
//! The channel the pieces go through is made only when an answer starts to stream: a whole
//! answer is the call's return value and pays for no channel, no send and no wake-up.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use tokio::sync::mpsc;

/// One piece of an answer, in order: a head, then (for a streamed answer) chunks.
#[derive(Debug)]
pub enum Piece {
    Head(Head),
    Chunk(Bytes),
    /// The answer cannot be finished (an upstream failure after its head left): the
    /// connection is closed without the rest, so the caller sees a broken answer, never a
    /// wrong one.
    Abort,
}

#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub content_type: Cow<'static, str>,
    /// The whole body, for an answer that did not stream.
    pub whole: Option<Vec<u8>>,
}

/// What a streamed answer's head says: a read's is 200 in the call's SOAP content type; a
/// spliced legacy answer keeps the legacy service's status and content type.
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    pub status: u16,
    pub content_type: &'a str,
}

impl Start<'static> {
    /// A response in the SOAP version's content type.
    pub fn soap(version: crate::soap::SoapVersion) -> Start<'static> {
        Start {
            status: 200,
            content_type: version.content_type(),
        }
    }
}

/// The caller went away while its answer streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// Where the receiving side of a streamed answer's pieces is left for the front when the
/// answer starts to stream (it stays empty for a whole answer).
pub type Pickup = Rc<RefCell<Option<mpsc::Receiver<Piece>>>>;

/// The sending side of an answer's pieces.
pub struct Downstream {
    /// Made by the first piece sent.
    tx: Option<mpsc::Sender<Piece>>,
    pickup: Pickup,
    threshold: usize,
    started: bool,
}

/// The SOAP bytes a streamed answer collects before it sends a chunk.
pub const STREAM_THRESHOLD: usize = 32 * 1024;

impl Downstream {
    /// An answer streams once `threshold` bytes are written; its pieces' receiver is then
    /// left in `pickup`.
    pub fn new(pickup: Pickup, threshold: usize) -> Downstream {
        Downstream {
            tx: None,
            pickup,
            threshold: threshold.max(1),
            started: false,
        }
    }

    /// Whether the head has left (the status can no longer change).
    pub fn started(&self) -> bool {
        self.started
    }

    /// Sends what `out` holds once it is over the threshold (the head first, as `start`
    /// says); `out` is then empty.
    pub async fn flush(&mut self, start: Start<'_>, out: &mut String) -> Result<(), Gone> {
        if out.len() < self.threshold {
            return Ok(());
        }
        self.send_chunk(start, out).await
    }

    /// The rest of a streamed answer.
    pub async fn finish(&mut self, start: Start<'_>, out: &mut String) -> Result<(), Gone> {
        self.send_chunk(start, out).await
    }

    /// Ends a streamed answer without its rest.
    pub async fn abort(&mut self) {
        let _ = self.sender().send(Piece::Abort).await;
    }

    /// The channel's sender, made (and its receiver left in the pickup) on first use.
    fn sender(&mut self) -> &mpsc::Sender<Piece> {
        self.tx.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel(1);
            *self.pickup.borrow_mut() = Some(rx);
            tx
        })
    }

    async fn send_chunk(&mut self, start: Start<'_>, out: &mut String) -> Result<(), Gone> {
        if !self.started {
            let head = Head {
                status: start.status,
                content_type: Cow::Owned(start.content_type.to_owned()),
                whole: None,
            };
            self.sender()
                .send(Piece::Head(head))
                .await
                .map_err(|_| Gone)?;
            self.started = true;
        }
        if out.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(out, String::with_capacity(self.threshold + 4096));
        self.sender()
            .send(Piece::Chunk(Bytes::from(chunk.into_bytes())))
            .await
            .map_err(|_| Gone)
    }
}
