//! Media frames on WebTransport streams, one frame per unidirectional stream: what the relay and
//! native clients both write and read.

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

/// Reads the payload after [`read_header`] and returns the whole frame. `Ok(None)`: the peer
/// abandoned the stream; a payload of another length than the header says is an error.
///
/// Ordered reads throughout: quinn's unordered `read_to_end` after the ordered header read can
/// be handed a retransmitted chunk the header already covered, and took it for a longer stream
/// (seen with Chromium's QUIC under load).
pub async fn read_payload(
    stream: &mut RecvStream,
    header: [u8; MediaHeader::LEN],
    parsed: MediaHeader,
) -> Result<Option<MediaFrame>, Error> {
    let len = parsed.payload_len as usize;
    let mut wire = BytesMut::zeroed(MediaHeader::LEN + len);
    wire[..MediaHeader::LEN].copy_from_slice(&header);
    match stream.read_exact(&mut wire[MediaHeader::LEN..]).await {
        Ok(()) => {}
        Err(StreamReadExactError::FinishedEarly(_)) => {
            return Err(Error::Malformed("video frame shorter than its header says"));
        }
        Err(StreamReadExactError::Read(_)) => return Ok(None),
    }
    // Then the stream must end.
    match stream.read(&mut [0u8; 1]).await {
        Ok(None) => {}
        Ok(Some(_)) => return Err(Error::Malformed("video frame longer than its header says")),
        Err(_) => return Ok(None),
    }
    MediaFrame::decode(wire.freeze(), TrackKind::Video).map(Some)
}
