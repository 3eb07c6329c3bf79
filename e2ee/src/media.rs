//! SFrame keys from MLS epochs: sealing our frames, opening everyone else's.
//!
//! Per RFC 9605 section 5.2: each epoch exports one base key ("SFrame 1.0 Base Key"); each
//! sender's key is derived from it with a Key ID that holds the sender's leaf index and the low
//! bits of the epoch, so every member has a key of its own without further coordination and a
//! receiver knows from a frame's Key ID which epoch and member sealed it. The frame's clear
//! media header goes in as SFrame metadata: not encrypted, but authenticated with the frame.

use std::collections::HashMap;
use std::time::Duration;

use sframe::CipherSuite;
use sframe::frame::{EncryptedFrameView, MediaFrameView, MonotonicCounter};
use sframe::key::{DecryptionKey, EncryptionKey};
use sframe::mls::{MlsKeyId, MlsKeyIdBitRange};
use web_time::Instant;

use crate::{Error, Result};

/// AES-128-GCM with SHA-256 (RFC 9605 suite 4): a 16-byte tag.
pub(crate) const SUITE: CipherSuite = CipherSuite::AesGcm128Sha256;

/// Low bits of the epoch in a Key ID: enough to tell the epochs a receiver still holds apart.
const EPOCH_BITS: u8 = 4;
/// Bits of the leaf index in a Key ID: a group of up to 1024 leaves.
const INDEX_BITS: u8 = 10;

/// How long a receiver keeps an epoch's keys after the next one began: frames sealed just
/// before the change are still on their way.
pub const PREVIOUS_EPOCH_KEPT: Duration = Duration::from_secs(5);

/// Epochs held at once, however fast they change (fewer than 2^[`EPOCH_BITS`], so the low bits
/// of a Key ID never name two of them).
const EPOCHS_HELD: usize = 4;

/// The most a sealed frame grows by: the SFrame header (a config byte, a Key ID of up to 2 bytes
/// for [`INDEX_BITS`] + [`EPOCH_BITS`], a counter of up to 8) and the 16-byte tag.
pub const SFRAME_OVERHEAD_MAX: usize = 1 + 2 + 8 + 16;

/// One epoch's keys.
struct EpochKeys {
    epoch: u64,
    /// The exported base key every member's key derives from.
    base: Vec<u8>,
    /// Each member's label by leaf index, as the epoch's roster had it.
    members: HashMap<u32, String>,
    /// Members' decryption keys derived so far (only after a frame under them opened).
    keys: HashMap<u64, DecryptionKey>,
    /// When a newer epoch began and this one started to wind down.
    superseded: Option<Instant>,
}

/// Our own sealing key in the current epoch.
struct Sealer {
    key: EncryptionKey,
    counter: MonotonicCounter,
}

/// The SFrame keys of the epochs a member holds: what a [`crate::Member`] seals and opens
/// media with. Public for callers given an epoch's base key some other way (interoperability
/// tests, test vectors).
pub struct FrameKeys {
    bits: MlsKeyIdBitRange,
    /// Oldest first; the last is the current epoch.
    epochs: Vec<EpochKeys>,
    sealer: Option<Sealer>,
}

/// What an epoch gives media: its number, its exported SFrame base key, its members' labels by
/// leaf index, and ours.
#[derive(Clone)]
pub struct EpochSecret {
    /// The MLS epoch.
    pub epoch: u64,
    /// The SFrame base key exported from it.
    pub base: Vec<u8>,
    /// Its members' labels by leaf index.
    pub members: HashMap<u32, String>,
    /// Our leaf index.
    pub own: u32,
}

impl std::fmt::Debug for EpochSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochSecret")
            .field("epoch", &self.epoch)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

/// An opened frame: who sealed it, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The sender's label (see the crate's docs).
    pub sender: String,
    /// The MLS epoch it was sealed in.
    pub epoch: u64,
    /// The plaintext payload.
    pub payload: Vec<u8>,
}

impl Default for FrameKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameKeys {
    /// No keys yet.
    pub fn new() -> Self {
        Self {
            bits: MlsKeyIdBitRange::new(EPOCH_BITS, INDEX_BITS),
            epochs: Vec::new(),
            sealer: None,
        }
    }

    fn key_id(&self, epoch: u64, index: u32) -> Result<u64> {
        MlsKeyId::try_new(0u64, epoch, index, self.bits)
            .map(u64::from)
            .map_err(|e| Error::Sframe(e.to_string()))
    }

    /// A new epoch begins.
    pub fn begin(&mut self, secret: EpochSecret, now: Instant) -> Result<()> {
        let EpochSecret {
            epoch,
            base,
            members,
            own,
        } = secret;
        let key_id = self.key_id(epoch, own)?;
        let key = EncryptionKey::derive_from(SUITE, key_id, &base)
            .map_err(|e| Error::Sframe(e.to_string()))?;
        for held in &mut self.epochs {
            held.superseded.get_or_insert(now);
        }
        self.epochs.retain(|held| held.epoch != epoch);
        self.epochs.push(EpochKeys {
            epoch,
            base,
            members,
            keys: HashMap::new(),
            superseded: None,
        });
        if self.epochs.len() > EPOCHS_HELD {
            let extra = self.epochs.len() - EPOCHS_HELD;
            self.epochs.drain(..extra);
        }
        self.sealer = Some(Sealer {
            key,
            counter: MonotonicCounter::default(),
        });
        Ok(())
    }

    /// Forgets every key (we left the group, or were removed).
    pub(crate) fn clear(&mut self) {
        self.epochs.clear();
        self.sealer = None;
    }

    /// Seals `payload` with `header` authenticated beside it: the SFrame ciphertext (its header,
    /// the encrypted payload and the tag).
    pub fn seal(&mut self, header: &[u8], payload: &[u8]) -> Result<Vec<u8>> {
        let sealer = self.sealer.as_mut().ok_or(Error::NoGroup)?;
        let frame = MediaFrameView::try_with_meta_data(&mut sealer.counter, payload, header)
            .map_err(|e| Error::Sframe(e.to_string()))?;
        let mut buffer = Vec::with_capacity(header.len() + payload.len() + SFRAME_OVERHEAD_MAX);
        let sealed = frame
            .encrypt_into(&sealer.key, &mut buffer)
            .map_err(|e| Error::Sframe(e.to_string()))?;
        Ok(sealed.sframe_cipher_text().to_vec())
    }

    /// Opens a frame sealed by [`FrameKeys::seal`] with `header` beside it, at `now`.
    pub fn open(&mut self, header: &[u8], sealed: &[u8], now: Instant) -> Result<Opened> {
        self.epochs.retain(|held| {
            held.superseded
                .is_none_or(|since| now.saturating_duration_since(since) < PREVIOUS_EPOCH_KEPT)
        });
        let view =
            EncryptedFrameView::try_with_meta_data(sealed, header).map_err(|_| Error::Forged)?;
        let key_id = view.header().key_id();
        let id = MlsKeyId::from_key_id(key_id, self.bits);
        if id.context_id() != 0 {
            return Err(Error::Forged);
        }
        let epoch_lsb = id.epoch_lsb();
        let held = self
            .epochs
            .iter_mut()
            .rev()
            .find(|held| held.epoch % (1 << EPOCH_BITS) == epoch_lsb)
            .ok_or(Error::UnknownEpoch)?;
        let index = u32::try_from(id.member_index()).map_err(|_| Error::Forged)?;
        let sender = held.members.get(&index).ok_or(Error::Forged)?.clone();
        let mut plain = Vec::with_capacity(sealed.len());
        // A key not held yet is derived now, and kept only once a frame under it has opened:
        // forged Key IDs cost a derivation each and leave nothing behind.
        let fresh = if held.keys.contains_key(&key_id) {
            None
        } else {
            Some(
                DecryptionKey::derive_from(SUITE, key_id, &held.base)
                    .map_err(|e| Error::Sframe(e.to_string()))?,
            )
        };
        let key = match &fresh {
            Some(key) => key,
            None => held.keys.get(&key_id).ok_or(Error::UnknownEpoch)?,
        };
        let payload = view
            .decrypt_into(key, &mut plain)
            .map_err(|_| Error::Forged)?
            .payload()
            .to_vec();
        if let Some(key) = fresh {
            held.keys.insert(key_id, key);
        }
        Ok(Opened {
            sender,
            epoch: held.epoch,
            payload,
        })
    }

    /// The current epoch, if any.
    pub fn epoch(&self) -> Option<u64> {
        self.epochs.last().map(|held| held.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(epoch: u64, base: &[u8], own: u32, now: Instant) -> FrameKeys {
        let mut keys = FrameKeys::new();
        let members = [(0, "1:ada".to_owned()), (1, "2:bob".to_owned())].into();
        keys.begin(
            EpochSecret {
                epoch,
                base: base.to_vec(),
                members,
                own,
            },
            now,
        )
        .expect("derives");
        keys
    }

    #[test]
    fn a_frame_opens_for_the_epoch_and_names_its_sender() {
        let now = Instant::now();
        let mut ada = keys(3, &[7; 16], 0, now);
        let mut bob = keys(3, &[7; 16], 1, now);
        let header = [9u8; 22];
        let sealed = ada.seal(&header, b"hello").expect("seals");
        assert!(sealed.len() <= 5 + SFRAME_OVERHEAD_MAX);
        let opened = bob.open(&header, &sealed, now).expect("opens");
        assert_eq!(opened.sender, "1:ada");
        assert_eq!(opened.payload, b"hello");
        assert_eq!(opened.epoch, 3);
        // The same again, from the cache.
        let sealed = ada.seal(&header, b"again").expect("seals");
        assert_eq!(
            bob.open(&header, &sealed, now).expect("opens").payload,
            b"again"
        );
    }

    #[test]
    fn another_base_key_or_an_altered_byte_does_not_open() {
        let now = Instant::now();
        let mut ada = keys(3, &[7; 16], 0, now);
        let mut eve = keys(3, &[8; 16], 1, now);
        let header = [9u8; 22];
        let sealed = ada.seal(&header, b"hello").expect("seals");
        assert!(matches!(
            eve.open(&header, &sealed, now),
            Err(Error::Forged)
        ));
        let mut bob = keys(3, &[7; 16], 1, now);
        for at in 0..header.len() {
            let mut altered = header;
            altered[at] ^= 1;
            assert!(
                matches!(bob.open(&altered, &sealed, now), Err(Error::Forged)),
                "header byte {at}"
            );
        }
        for at in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[at] ^= 0x10;
            assert!(
                bob.open(&header, &altered, now).is_err(),
                "sealed byte {at}"
            );
        }
        assert!(bob.open(&header, &sealed, now).is_ok());
    }

    #[test]
    fn a_previous_epoch_opens_for_a_while_then_not() {
        let now = Instant::now();
        let mut ada = keys(3, &[7; 16], 0, now);
        let mut bob = keys(3, &[7; 16], 1, now);
        let header = [1u8; 22];
        let old = ada.seal(&header, b"old").expect("seals");
        let members: HashMap<u32, String> =
            [(0, "1:ada".to_owned()), (1, "2:bob".to_owned())].into();
        bob.begin(
            EpochSecret {
                epoch: 4,
                base: vec![5; 16],
                members,
                own: 1,
            },
            now,
        )
        .expect("derives");
        assert_eq!(bob.epoch(), Some(4));
        assert!(
            bob.open(&header, &old, now + Duration::from_secs(1))
                .is_ok()
        );
        assert!(matches!(
            bob.open(&header, &old, now + PREVIOUS_EPOCH_KEPT),
            Err(Error::UnknownEpoch)
        ));
    }
}
