//! Media frames on WebTransport streams, one frame per unidirectional stream: what the relay and
//! native clients both write and read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use rotunda_proto::{Error, MediaFrame, MediaHeader, TrackKind};
use wtransport::error::StreamReadExactError;
use wtransport::{Connection, RecvStream, VarInt};

/// When a frame's bytes may go: given a chunk's length, the instant it may be written.
pub type Pace = dyn Fn(usize) -> std::time::Instant + Send + Sync;

/// Bytes written at a time when a frame is paced (about a packet's payload).
const PACED_CHUNK: usize = 1200;

/// Writes one frame on a new stream with `priority` (higher goes first), its bytes spread out
/// as `pace` says if given. A frame not opened, or not delivered and acknowledged, within
/// `stale` is abandoned: its stream is reset.
pub async fn write_frame(
    connection: &Connection,
    frame: &MediaFrame,
    priority: i32,
    stale: Duration,
    pace: Option<&Pace>,
) {
    let opened = tokio::time::timeout(stale, async {
        match connection.open_uni().await {
            Ok(opening) => opening.await.ok(),
            Err(_) => None,
        }
    })
    .await;
    let Ok(Some(mut stream)) = opened else {
        return;
    };
    stream.set_priority(priority);
    let delivered = tokio::time::timeout(stale, async {
        match pace {
            None => stream.write_all(&frame.wire).await?,
            Some(pace) => {
                for chunk in frame.wire.chunks(PACED_CHUNK) {
                    // A time already come is no reason to wait for the timer's next tick (1 ms a
                    // chunk kept frames' streams open long enough that a busy browser fell
                    // behind taking them: 91 % of one page's frames in the browser test).
                    let at = pace(chunk.len());
                    if at > std::time::Instant::now() {
                        tokio::time::sleep_until(at.into()).await;
                    }
                    stream.write_all(chunk).await?;
                }
            }
        }
        stream.finish().await
    })
    .await;
    if delivered.is_err() {
        let _ = stream.reset(VarInt::from_u32(0));
    }
}

/// Reads a video frame's header. `Ok(None)`: the peer abandoned the stream.
pub async fn read_header(
    stream: &mut RecvStream,
) -> Result<Option<([u8; MediaHeader::LEN], MediaHeader)>, Error> {
    let mut header = [0u8; MediaHeader::LEN];
    match stream.read_exact(&mut header).await {
        Ok(()) => {}
        Err(StreamReadExactError::FinishedEarly(_)) => {
            return Err(Error::Malformed("short video frame"));
        }
        Err(StreamReadExactError::Read(_)) => return Ok(None),
    }
    let parsed = MediaHeader::decode(&header, TrackKind::Video)?;
    Ok(Some((header, parsed)))
}

/// Bytes read from a stream at a time: what an unfinished frame grows by.
const READ_CHUNK: usize = 16 * 1024;

/// A bound on the bytes of unfinished frames held at once: each frame's bytes count from their
/// arrival until the frame is whole or dropped. A budget may draw on a parent as well (a
/// connection's on the whole relay's), and both must have room.
#[derive(Debug, Clone)]
pub struct Budget {
    used: Arc<AtomicUsize>,
    limit: usize,
    parent: Option<Arc<Budget>>,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            used: Arc::new(AtomicUsize::new(0)),
            limit,
            parent: None,
        }
    }

    /// A budget of its own, of `limit` bytes, that also draws on this one.
    pub fn child(&self, limit: usize) -> Self {
        Self {
            used: Arc::new(AtomicUsize::new(0)),
            limit,
            parent: Some(Arc::new(self.clone())),
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` if there is room here and in the parent.
    fn take(&self, bytes: usize) -> bool {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok();
        if !taken {
            return false;
        }
        if let Some(parent) = &self.parent
            && !parent.take(bytes)
        {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn give(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        if let Some(parent) = &self.parent {
            parent.give(bytes);
        }
    }
}

/// Bytes taken from a [`Budget`], given back when dropped.
struct Held<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Held<'_> {
    fn take(&mut self, bytes: usize) -> bool {
        let taken = self.budget.take(bytes);
        if taken {
            self.bytes += bytes;
        }
        taken
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.give(self.bytes);
    }
}

/// Reads the payload after [`read_header`] and returns the whole frame. `Ok(None)`: the peer
/// abandoned the stream, or `budget` had no room for what arrived (the frame is dropped: drop
/// the stream to stop it); a payload of another length than the header says is an error.
///
/// The frame's memory follows the bytes that arrived, not the length its header claims: a peer
/// that announces a megabyte and sends a little costs a little, and no more than `budget`
/// altogether.
///
/// Ordered reads throughout: quinn's unordered `read_to_end` after the ordered header read can
/// be handed a retransmitted chunk the header already covered, and took it for a longer stream
/// (seen with Chromium's QUIC under load).
pub async fn read_payload(
    stream: &mut RecvStream,
    header: [u8; MediaHeader::LEN],
    parsed: MediaHeader,
    budget: &Budget,
) -> Result<Option<MediaFrame>, Error> {
    let total = MediaHeader::LEN + parsed.payload_len as usize;
    let mut held = Held { budget, bytes: 0 };
    let mut wire = BytesMut::with_capacity(total.min(MediaHeader::LEN + READ_CHUNK));
    wire.extend_from_slice(&header);
    while wire.len() < total {
        let at = wire.len();
        let want = (total - at).min(READ_CHUNK);
        // What the frame holds once this read is in: taken before it is read.
        let reach = at + want;
        if held.bytes < reach && !held.take(reach - held.bytes) {
            // Dropping the stream stops it (quinn sends STOP_SENDING for what is unread).
            return Ok(None);
        }
        wire.resize(at + want, 0);
        match stream.read(&mut wire[at..]).await {
            Ok(Some(n)) => wire.truncate(at + n),
            Ok(None) => return Err(Error::Malformed("video frame shorter than its header says")),
            Err(_) => return Ok(None),
        }
    }
    // Then the stream must end.
    match stream.read(&mut [0u8; 1]).await {
        Ok(None) => {}
        Ok(Some(_)) => return Err(Error::Malformed("video frame longer than its header says")),
        Err(_) => return Ok(None),
    }
    MediaFrame::decode(wire.freeze(), TrackKind::Video).map(Some)
}
