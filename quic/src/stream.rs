//! Media frames on WebTransport streams, one frame per unidirectional stream: what the relay and
//! native clients both write and read.

use std::time::Duration;

use bytes::BytesMut;
use rotunda_proto::{Error, MediaFrame, MediaHeader, TrackKind};
use wtransport::error::StreamReadExactError;
use wtransport::{Connection, RecvStream, VarInt};

/// Writes one frame on a new stream with `priority` (higher goes first). A frame not opened, or
/// not delivered and acknowledged, within `stale` is abandoned: its stream is reset.
pub async fn write_frame(
    connection: &Connection,
    frame: &MediaFrame,
    priority: i32,
    stale: Duration,
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
        stream.write_all(&frame.wire).await?;
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
