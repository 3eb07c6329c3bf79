//! Where the call leaves what the application reads at its own pace: the newest decoded picture
//! and the newest pose of every participant. The engine overwrites, the application takes, so a
//! slow renderer never backs up the call and a fast call never grows memory.

use std::collections::HashMap;
use std::sync::Mutex;

use rotunda_proto::{ParticipantId, Pose};

use crate::media::VideoFrame;
use crate::sync::lock;

/// The latest pose of every participant that moved.
#[derive(Debug, Default)]
pub struct Poses {
    latest: Mutex<HashMap<ParticipantId, Pose>>,
}

impl Poses {
    /// Keeps `pose` as the latest of `id`.
    pub fn store(&self, id: ParticipantId, pose: Pose) {
        lock(&self.latest).insert(id, pose);
    }

    /// The poses stored since the last call.
    pub fn take(&self) -> Vec<(ParticipantId, Pose)> {
        lock(&self.latest).drain().collect()
    }

    /// Forgets someone who left.
    pub fn remove(&self, id: ParticipantId) {
        lock(&self.latest).remove(&id);
    }

    /// Forgets everyone (a new session).
    pub fn clear(&self) {
        lock(&self.latest).clear();
    }
}

/// The latest decoded picture of one participant.
#[derive(Debug)]
pub struct Picture {
    /// The picture, I420.
    pub frame: VideoFrame,
    /// Counts up with every new picture.
    pub serial: u64,
}

/// The latest decoded picture of every participant (our own id: the self-view).
#[derive(Debug, Default)]
pub struct Pictures {
    slots: Mutex<HashMap<ParticipantId, Picture>>,
}

impl Pictures {
    /// Keeps `frame` as the latest of `id`.
    pub fn store(&self, id: ParticipantId, frame: VideoFrame) {
        let mut slots = lock(&self.slots);
        let slot = slots.entry(id).or_insert_with(|| Picture {
            frame: VideoFrame::new(2, 2),
            serial: 0,
        });
        slot.frame = frame;
        slot.serial += 1;
    }

    /// Calls `read` with the picture of `id` when it is newer than `seen`; returns its serial.
    pub fn read_newer<R>(
        &self,
        id: ParticipantId,
        seen: u64,
        read: impl FnOnce(&VideoFrame) -> R,
    ) -> Option<(u64, R)> {
        let slots = lock(&self.slots);
        let slot = slots.get(&id).filter(|slot| slot.serial > seen)?;
        Some((slot.serial, read(&slot.frame)))
    }

    /// Forgets the picture of someone who left.
    pub fn remove(&self, id: ParticipantId) {
        lock(&self.slots).remove(&id);
    }

    /// Forgets every picture (a new session), keeping `keep`'s (our own).
    pub fn clear_except(&self, keep: Option<ParticipantId>) {
        lock(&self.slots).retain(|id, _| Some(*id) == keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_read_once_per_serial() {
        let pictures = Pictures::default();
        let id = ParticipantId(1);
        assert!(pictures.read_newer(id, 0, |_| ()).is_none());
        pictures.store(id, VideoFrame::new(4, 4));
        let (serial, width) = pictures.read_newer(id, 0, |f| f.width).expect("a picture");
        assert_eq!((serial, width), (1, 4));
        assert!(pictures.read_newer(id, serial, |_| ()).is_none());
        pictures.store(id, VideoFrame::new(8, 8));
        assert_eq!(pictures.read_newer(id, serial, |f| f.width), Some((2, 8)));
        pictures.remove(id);
        assert!(pictures.read_newer(id, 0, |_| ()).is_none());
    }

    #[test]
    fn poses_keep_only_the_newest() {
        let poses = Poses::default();
        let id = ParticipantId(2);
        let mut pose = Pose::default();
        poses.store(id, pose);
        pose.position[0] = 3.0;
        poses.store(id, pose);
        assert_eq!(poses.take(), vec![(id, pose)]);
        assert!(poses.take().is_empty());
    }
}
