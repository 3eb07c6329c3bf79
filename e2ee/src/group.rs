//! A member of a room's MLS group: its key packages, the commits it makes and applies, the
//! welcome that lets it in, its media keys and its chat.

use std::collections::{BTreeSet, HashMap, HashSet};

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, KeyPackage, LeafNodeIndex, MlsGroup,
    MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut,
    ProcessedMessageContent, Proposal, ProtocolVersion, StagedCommit, StagedWelcome,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::OpenMlsProvider as _;
use web_time::Instant;

use crate::media::{EpochSecret, FrameKeys, Opened, SUITE};
use crate::safety::safety_code;
use crate::{Error, Result, mls};

/// X25519, AES-128-GCM, SHA-256 and Ed25519: MLS's mandatory suite, the one every pure-Rust
/// provider has.
const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// Epochs before the current one whose chat lines still open: a line sealed just before a join
/// or leave reaches its readers after it (media keys are kept [`crate::PREVIOUS_EPOCH_KEPT`]).
const PAST_EPOCHS: usize = 2;

/// The exporter label and length of an epoch's SFrame base key (RFC 9605 section 5.2).
const SFRAME_LABEL: &str = "SFrame 1.0 Base Key";

/// Who is in the room, as the relay authenticated it: the labels a commit may add and must not
/// keep.
pub trait Roster {
    /// Whether the member labelled `label` is in the room now.
    fn present(&self, label: &str) -> bool;
}

impl<F: Fn(&str) -> bool> Roster for F {
    fn present(&self, label: &str) -> bool {
        self(label)
    }
}

impl Roster for HashSet<String> {
    fn present(&self, label: &str) -> bool {
        self.contains(label)
    }
}

/// A commit a member made, to hand to the relay.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The commit, for every member.
    pub commit: Vec<u8>,
    /// The welcome, for the members it adds (none when it only removes).
    pub welcome: Option<Vec<u8>>,
    /// The epoch it leads from.
    pub from_epoch: u64,
}

/// What applying a commit (or a welcome) changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The new epoch.
    pub epoch: u64,
    /// Labels added.
    pub added: Vec<String>,
    /// Labels removed.
    pub removed: Vec<String>,
}

/// One participant's side of the room's MLS group.
pub struct Member {
    label: String,
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
    group: Option<MlsGroup>,
    /// Our commit waiting for the relay's word, as sent.
    pending: Option<Vec<u8>>,
    keys: FrameKeys,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("label", &self.label)
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

fn label_of(credential: &openmls::prelude::Credential) -> String {
    String::from_utf8_lossy(credential.serialized_content()).into_owned()
}

impl Member {
    /// A new member known as `label`, with a fresh signature key.
    pub fn new(label: &str) -> Result<Self> {
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).map_err(mls)?;
        signer.store(provider.storage()).map_err(mls)?;
        let credential = CredentialWithKey {
            credential: BasicCredential::new(label.as_bytes().to_vec()).into(),
            signature_key: signer.to_public_vec().into(),
        };
        Ok(Self {
            label: label.to_owned(),
            provider,
            signer,
            credential,
            group: None,
            pending: None,
            keys: FrameKeys::new(),
        })
    }

    /// Our label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A key package for someone to add us with (each is used once).
    pub fn key_package(&self) -> Result<Vec<u8>> {
        let bundle = KeyPackage::builder()
            .build(
                CIPHERSUITE,
                &self.provider,
                &self.signer,
                self.credential.clone(),
            )
            .map_err(mls)?;
        MlsMessageOut::from(bundle.key_package().clone())
            .to_bytes()
            .map_err(mls)
    }

    /// Starts the room's group, alone in it (the relay says who starts it).
    pub fn create_group(&mut self, now: Instant) -> Result<Applied> {
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(CIPHERSUITE)
            .use_ratchet_tree_extension(true)
            .max_past_epochs(PAST_EPOCHS)
            .build();
        let group = MlsGroup::new(
            &self.provider,
            &self.signer,
            &config,
            self.credential.clone(),
        )
        .map_err(mls)?;
        self.group = Some(group);
        self.pending = None;
        self.begin_epoch(now)?;
        Ok(Applied {
            epoch: self.epoch().unwrap_or_default(),
            added: vec![self.label.clone()],
            removed: Vec::new(),
        })
    }

    /// Whether we are in a group.
    pub fn in_group(&self) -> bool {
        self.group.as_ref().is_some_and(MlsGroup::is_active)
    }

    /// The current epoch.
    pub fn epoch(&self) -> Option<u64> {
        self.group
            .as_ref()
            .filter(|group| group.is_active())
            .map(|group| group.epoch().as_u64())
    }

    /// The group's members' labels.
    pub fn members(&self) -> BTreeSet<String> {
        self.group
            .iter()
            .flat_map(|group| group.members())
            .map(|member| label_of(&member.credential))
            .collect()
    }

    /// The epoch's safety code (see [`crate::safety_code`]).
    pub fn safety_code(&self) -> Option<String> {
        let group = self.group.as_ref().filter(|group| group.is_active())?;
        safety_code(group.epoch_authenticator().as_slice())
    }

    /// A commit adding the members whose key packages these are and removing those labelled
    /// so (labels not in the group are passed over). It waits, pending, for the relay to pick it
    /// or another member's commit for this epoch ([`Member::apply_commit`]).
    pub fn commit(&mut self, add: &[Vec<u8>], remove: &[String]) -> Result<Commit> {
        let group = self.group.as_mut().ok_or(Error::NoGroup)?;
        if group.pending_commit().is_some() {
            group
                .clear_pending_commit(self.provider.storage())
                .map_err(mls)?;
        }
        let mut key_packages = Vec::with_capacity(add.len());
        for bytes in add {
            key_packages.push(validate_key_package(&self.provider, bytes)?);
        }
        let removed: Vec<LeafNodeIndex> = group
            .members()
            .filter(|member| remove.contains(&label_of(&member.credential)))
            .map(|member| member.index)
            .collect();
        if key_packages.is_empty() && removed.is_empty() {
            return Err(Error::NothingToCommit);
        }
        let from_epoch = group.epoch().as_u64();
        let bundle = group
            .commit_builder()
            .propose_adds(key_packages)
            .propose_removals(removed)
            .load_psks(self.provider.storage())
            .map_err(mls)?
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &self.signer,
                |_| true,
            )
            .map_err(mls)?
            .stage_commit(&self.provider)
            .map_err(mls)?;
        let (commit, welcome, _) = bundle.into_messages();
        let commit = commit.to_bytes().map_err(mls)?;
        let welcome = welcome
            .map(|welcome| welcome.to_bytes())
            .transpose()
            .map_err(mls)?;
        self.pending = Some(commit.clone());
        Ok(Commit {
            commit,
            welcome,
            from_epoch,
        })
    }

    /// Applies the commit the relay chose for this epoch (ours, or another member's) after
    /// checking it against the `roster`: every member it adds must be present, every member it
    /// removes must have left. A refused commit leaves the group as it was.
    pub fn apply_commit(
        &mut self,
        bytes: &[u8],
        roster: &impl Roster,
        now: Instant,
    ) -> Result<Applied> {
        let group = self.group.as_mut().ok_or(Error::NoGroup)?;
        if self.pending.as_deref() == Some(bytes) {
            self.pending = None;
            let staged = group.pending_commit().ok_or(Error::NoGroup)?;
            let applied = check_commit(group, staged, roster)?;
            group.merge_pending_commit(&self.provider).map_err(mls)?;
            self.begin_epoch(now)?;
            return Ok(Applied {
                epoch: self.epoch().unwrap_or_default(),
                ..applied
            });
        }
        if self.pending.take().is_some() {
            // Another member's commit won this epoch: ours is void.
            group
                .clear_pending_commit(self.provider.storage())
                .map_err(mls)?;
        }
        let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(mls)?;
        let message = message.try_into_protocol_message().map_err(mls)?;
        let processed = group
            .process_message(&self.provider, message)
            .map_err(mls)?;
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            return Err(Error::Mls("not a commit".into()));
        };
        let applied = check_commit(group, &staged, roster)?;
        let removed_us = staged.self_removed();
        group
            .merge_staged_commit(&self.provider, *staged)
            .map_err(mls)?;
        if removed_us {
            self.group = None;
            self.keys.clear();
            return Ok(applied);
        }
        self.begin_epoch(now)?;
        Ok(Applied {
            epoch: self.epoch().unwrap_or_default(),
            ..applied
        })
    }

    /// Forgets a commit of ours the relay did not take (it will ask again).
    pub fn discard_pending(&mut self) -> Result<()> {
        self.pending = None;
        if let Some(group) = self.group.as_mut() {
            group
                .clear_pending_commit(self.provider.storage())
                .map_err(mls)?;
        }
        Ok(())
    }

    /// Joins with a welcome, after checking that everyone in the group is in the `roster`.
    pub fn join(&mut self, welcome: &[u8], roster: &impl Roster, now: Instant) -> Result<Applied> {
        let message = MlsMessageIn::tls_deserialize_exact(welcome).map_err(mls)?;
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            return Err(Error::Mls("not a welcome".into()));
        };
        let config = MlsGroupJoinConfig::builder()
            .use_ratchet_tree_extension(true)
            .max_past_epochs(PAST_EPOCHS)
            .build();
        let staged =
            StagedWelcome::new_from_welcome(&self.provider, &config, welcome, None).map_err(mls)?;
        let members: Vec<String> = staged
            .members()
            .map(|member| label_of(&member.credential))
            .collect();
        if let Some(stranger) = members.iter().find(|label| !roster.present(label)) {
            return Err(Error::Refused(format!(
                "the group holds {stranger:?}, who is not in the room"
            )));
        }
        if !members.contains(&self.label) {
            return Err(Error::Refused("the welcome does not hold us".into()));
        }
        let group = staged.into_group(&self.provider).map_err(mls)?;
        self.group = Some(group);
        self.pending = None;
        self.begin_epoch(now)?;
        Ok(Applied {
            epoch: self.epoch().unwrap_or_default(),
            added: members,
            removed: Vec::new(),
        })
    }

    /// The current epoch's SFrame base key, members and own leaf index.
    fn epoch_secret(&self) -> Result<EpochSecret> {
        let group = self.group.as_ref().ok_or(Error::NoGroup)?;
        let base = group
            .export_secret(self.provider.crypto(), SFRAME_LABEL, b"", SUITE.key_len())
            .map_err(mls)?;
        let members: HashMap<u32, String> = group
            .members()
            .map(|member| (member.index.u32(), label_of(&member.credential)))
            .collect();
        let own = group.own_leaf_index().u32();
        Ok(EpochSecret {
            epoch: group.epoch().as_u64(),
            base,
            members,
            own,
        })
    }

    /// Installs the current epoch's media keys.
    fn begin_epoch(&mut self, now: Instant) -> Result<()> {
        let secret = self.epoch_secret()?;
        self.keys.begin(secret, now)
    }

    /// The current epoch's number, SFrame base key and members by leaf index: a group secret,
    /// exposed only to write test vectors (feature `vectors`).
    #[cfg(feature = "vectors")]
    pub fn vector_secret(&self) -> Result<EpochSecret> {
        self.epoch_secret()
    }

    /// Seals a media payload with its clear `header` authenticated beside it.
    pub fn seal(&mut self, header: &[u8], payload: &[u8]) -> Result<Vec<u8>> {
        self.keys.seal(header, payload)
    }

    /// Opens a media payload sealed by a member, its clear `header` as it arrived.
    pub fn open(&mut self, header: &[u8], sealed: &[u8], now: Instant) -> Result<Opened> {
        self.keys.open(header, sealed, now)
    }

    /// A chat line as an MLS application message.
    pub fn seal_chat(&mut self, text: &str) -> Result<Vec<u8>> {
        let group = self.group.as_mut().ok_or(Error::NoGroup)?;
        group
            .create_message(&self.provider, &self.signer, text.as_bytes())
            .map_err(mls)?
            .to_bytes()
            .map_err(mls)
    }

    /// Opens a chat line: who said it, and what.
    pub fn open_chat(&mut self, bytes: &[u8]) -> Result<(String, String)> {
        let group = self.group.as_mut().ok_or(Error::NoGroup)?;
        let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(mls)?;
        let message = message.try_into_protocol_message().map_err(mls)?;
        let processed = group
            .process_message(&self.provider, message)
            .map_err(mls)?;
        let sender = label_of(processed.credential());
        let ProcessedMessageContent::ApplicationMessage(message) = processed.into_content() else {
            return Err(Error::Mls("not an application message".into()));
        };
        let text = String::from_utf8(message.into_bytes())
            .map_err(|_| Error::Mls("chat is not UTF-8".into()))?;
        Ok((sender, text))
    }
}

/// Reads and verifies a key package.
fn validate_key_package(provider: &OpenMlsRustCrypto, bytes: &[u8]) -> Result<KeyPackage> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(mls)?;
    let MlsMessageBodyIn::KeyPackage(key_package) = message.extract() else {
        return Err(Error::Mls("not a key package".into()));
    };
    key_package
        .validate(provider.crypto(), ProtocolVersion::Mls10)
        .map_err(mls)
}

/// Checks a staged commit against the roster: adds only of members present, removals only of
/// members gone (or added again by the same commit: one who lost their group state), nothing
/// but adds, removals and updates.
fn check_commit(group: &MlsGroup, staged: &StagedCommit, roster: &impl Roster) -> Result<Applied> {
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let readded: BTreeSet<String> = staged
        .add_proposals()
        .map(|add| label_of(add.add_proposal().key_package().leaf_node().credential()))
        .collect();
    for proposal in staged.queued_proposals() {
        match proposal.proposal() {
            Proposal::Add(add) => {
                let label = label_of(add.key_package().leaf_node().credential());
                if !roster.present(&label) {
                    return Err(Error::Refused(format!(
                        "the commit adds {label:?}, who is not in the room"
                    )));
                }
                added.push(label);
            }
            Proposal::Remove(remove) => {
                let label = group
                    .member(remove.removed())
                    .map(label_of)
                    .ok_or_else(|| Error::Mls("the commit removes an empty leaf".into()))?;
                if roster.present(&label) && !readded.contains(&label) {
                    return Err(Error::Refused(format!(
                        "the commit removes {label:?}, who is still in the room"
                    )));
                }
                removed.push(label);
            }
            Proposal::Update(_) => {}
            _ => {
                return Err(Error::Refused(
                    "the commit holds a proposal other than add, remove or update".into(),
                ));
            }
        }
    }
    Ok(Applied {
        epoch: group.epoch().as_u64() + 1,
        added,
        removed,
    })
}
