//! Recording at the relay (`--record DIR`): every published track's frames as the relay receives
//! them, which is all a relay ever holds of a meeting.
//!
//! Under `DIR/<room>/<opened>/` (the room's name with every byte but letters, digits, `-`, `_`
//! and `.` percent-encoded; `<opened>` the time the room opened and a serial, so a room closed
//! and opened again does not mix two meetings' participants), one file per track and layer:
//! - video: `p<id>-t<index>-L<layer>.h264`, the frames' payloads one after another. A client
//!   sends H.264 in Annex-B form, so a room without end-to-end encryption plays in ffmpeg
//!   (`ffplay p1-t0-L2.h264`); an encrypted room's files are ciphertext and decode to nothing.
//! - audio: `p<id>-t<index>.opus-frames`, each payload (one Opus packet, or its ciphertext)
//!   after its length as two bytes, big-endian.
//!
//! Writing happens on a thread of its own, fed by a bounded queue: a slow disk loses frames
//! (counted and logged), never holds up forwarding.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rotunda_proto::{MediaFrame, MediaHeader, TrackId, TrackKind};
use tracing::{info, warn};

/// Frames queued for the disk before more are dropped.
const QUEUE: usize = 4096;

/// One frame to write.
struct Entry {
    room: Arc<str>,
    track: TrackId,
    kind: TrackKind,
    layer: u8,
    payload: Bytes,
}

/// Writes what the relay forwards under one directory.
pub struct Recorder {
    dir: PathBuf,
    queue: Mutex<Option<std::sync::mpsc::SyncSender<Entry>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    dropped: AtomicU64,
    rooms: AtomicU64,
}

impl Recorder {
    /// Starts recording under `dir` (created if missing).
    pub fn start(dir: &Path) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("creating the recording directory {}: {e}", dir.display())
        })?;
        let (queue, entries) = std::sync::mpsc::sync_channel(QUEUE);
        let root = dir.to_owned();
        let writer = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || write_all(&root, entries))?;
        info!(dir = %dir.display(), "recording every track the relay forwards");
        Ok(Arc::new(Self {
            dir: dir.to_owned(),
            queue: Mutex::new(Some(queue)),
            writer: Mutex::new(Some(writer)),
            dropped: AtomicU64::new(0),
            rooms: AtomicU64::new(0),
        }))
    }

    /// Where a room opened now records, relative to the recording directory.
    pub fn room_dir(&self, room: &str) -> Arc<str> {
        let serial = self.rooms.fetch_add(1, Ordering::Relaxed) + 1;
        let opened = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(':', "-");
        let name = percent_encoding::utf8_percent_encode(room, FILE_NAME).to_string();
        let relative = format!("{name}/{opened}-{serial}");
        info!(room, dir = %self.dir.join(&relative).display(), "recording the room");
        relative.into()
    }

    /// Queues a frame a publisher sent on one of its published tracks.
    pub fn frame(&self, room: &Arc<str>, track: TrackId, kind: TrackKind, frame: &MediaFrame) {
        let entry = Entry {
            room: room.clone(),
            track,
            kind,
            layer: frame.header.layer,
            payload: frame.wire.slice(MediaHeader::LEN..),
        };
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let sent = queue.as_ref().is_some_and(|q| q.try_send(entry).is_ok());
        if !sent {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                warn!(dropped, "the disk is not keeping up: recording lost frames");
            }
        }
    }

    /// Writes out what is queued and closes every file.
    pub fn finish(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer
            && writer.join().is_err()
        {
            warn!("the recording thread failed");
        }
    }
}

/// What stays as it is in a directory name.
const FILE_NAME: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

fn write_all(root: &Path, entries: std::sync::mpsc::Receiver<Entry>) {
    let mut files: HashMap<(Arc<str>, TrackId, u8), Option<File>> = HashMap::new();
    for entry in entries {
        let layer = if entry.kind == TrackKind::Video {
            entry.layer
        } else {
            0
        };
        let key = (entry.room.clone(), entry.track, layer);
        let file = files.entry(key).or_insert_with(|| {
            let dir = root.join(&*entry.room);
            let name = match entry.kind {
                TrackKind::Video => format!(
                    "{}-t{}-L{}.h264",
                    entry.track.participant, entry.track.index, layer
                ),
                TrackKind::Audio => format!(
                    "{}-t{}.opus-frames",
                    entry.track.participant, entry.track.index
                ),
            };
            let path = dir.join(name);
            let opened = std::fs::create_dir_all(&dir).and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
            });
            match opened {
                Ok(file) => Some(file),
                Err(error) => {
                    warn!(path = %path.display(), %error, "cannot record this track");
                    None
                }
            }
        });
        let Some(out) = file else {
            continue;
        };
        let written = match entry.kind {
            TrackKind::Video => out.write_all(&entry.payload),
            TrackKind::Audio => {
                let len = u16::try_from(entry.payload.len()).unwrap_or(u16::MAX);
                out.write_all(&len.to_be_bytes())
                    .and_then(|()| out.write_all(&entry.payload[..usize::from(len)]))
            }
        };
        if let Err(error) = written {
            warn!(%error, "recording a track failed; it stops here");
            *file = None;
        }
    }
}
