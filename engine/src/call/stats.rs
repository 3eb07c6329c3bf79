//! The call's counters: what each participant sent while we were there, what arrived, what was
//! decoded, how late; made into the live figures once a second and into the report at the end.
//!
//! Counters belong to one session with the relay. After a rejoin ids may mean other people (a
//! restarted relay numbers afresh), so the earlier session's counters are kept by name and added
//! in when the report is made.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rotunda_proto::ParticipantId;
use web_time::{Duration, Instant};

use super::report::{BotReport, PeerReport};
use crate::media::sequence::Unwrapper;

/// Counters of one remote participant in one session.
#[derive(Debug, Default, Clone)]
pub(super) struct PeerStats {
    pub video_received: u64,
    pub video_decoded: u64,
    pub video_skipped: u64,
    pub wrong_sender: u64,
    pub unmarked: u64,
    pub audio_received: u64,
    pub audio_decoded: u64,
    pub audio_concealed: u64,
    pub video_latency_ms: Reservoir,
    pub audio_latency_ms: Reservoir,
    pub bytes_received: u64,
    /// Video payload bytes received.
    pub video_bytes: u64,
    /// Video frames received, per layer.
    pub video_layers: [u64; LAYERS],
    /// Sequence numbers seen (extended to 64 bits), per kind (and per video layer: each
    /// numbers its own frames).
    pub video_span: [SequenceSpan; LAYERS],
    pub audio_span: SequenceSpan,
    /// A shared screen's frames received and decoded, its numbers per layer, how late, the
    /// newest picture's size and the sender marks it last showed.
    pub screen_received: u64,
    pub screen_decoded: u64,
    pub screen_span: [SequenceSpan; LAYERS],
    pub screen_latency_ms: Reservoir,
    pub screen_size: Option<(usize, usize)>,
    pub screen_marks: Option<u16>,
}

/// Layers a video track may have (the media header's two bits).
const LAYERS: usize = rotunda_proto::limits::MAX_LAYERS;

impl PeerStats {
    fn merge(&mut self, other: &PeerStats) {
        self.video_received += other.video_received;
        self.video_decoded += other.video_decoded;
        self.video_skipped += other.video_skipped;
        self.wrong_sender += other.wrong_sender;
        self.unmarked += other.unmarked;
        self.audio_received += other.audio_received;
        self.audio_decoded += other.audio_decoded;
        self.audio_concealed += other.audio_concealed;
        self.bytes_received += other.bytes_received;
        self.video_bytes += other.video_bytes;
        for n in 0..LAYERS {
            self.video_layers[n] += other.video_layers[n];
            self.video_span[n].extra += other.video_span[n].count();
        }
        self.video_latency_ms.merge(&other.video_latency_ms);
        self.audio_latency_ms.merge(&other.audio_latency_ms);
        self.audio_span.extra += other.audio_span.count();
        self.screen_received += other.screen_received;
        self.screen_decoded += other.screen_decoded;
        for n in 0..LAYERS {
            self.screen_span[n].extra += other.screen_span[n].count();
        }
        self.screen_latency_ms.merge(&other.screen_latency_ms);
        self.screen_size = self.screen_size.or(other.screen_size);
        self.screen_marks = self.screen_marks.or(other.screen_marks);
    }

    /// The numbers seen of one layer of the camera's video or of the screen's.
    pub fn span(&mut self, screen: bool, layer: usize) -> &mut SequenceSpan {
        let spans = if screen {
            &mut self.screen_span
        } else {
            &mut self.video_span
        };
        &mut spans[layer.min(LAYERS - 1)]
    }

    fn report(&self, id: ParticipantId, seconds: f64) -> PeerReport {
        let layers = self
            .video_layers
            .iter()
            .rposition(|n| *n > 0)
            .map_or(0, |top| top + 1);
        PeerReport {
            id: id.0,
            video_frames_received: self.video_received,
            video_frames_decoded: self.video_decoded,
            video_frames_skipped: self.video_skipped,
            video_frames_wrong_sender: self.wrong_sender,
            video_frames_unmarked: self.unmarked,
            audio_frames_received: self.audio_received,
            audio_frames_decoded: self.audio_decoded,
            audio_frames_concealed: self.audio_concealed,
            video_latency_ms_p50: percentile(&self.video_latency_ms.samples, 0.5),
            video_latency_ms_p95: percentile(&self.video_latency_ms.samples, 0.95),
            audio_latency_ms_p50: percentile(&self.audio_latency_ms.samples, 0.5),
            audio_latency_ms_p95: percentile(&self.audio_latency_ms.samples, 0.95),
            video_frames_expected: self.video_span.iter().map(SequenceSpan::count).sum(),
            video_frames_by_layer: self.video_layers[..layers].to_vec(),
            video_kbps: if seconds > 0.0 {
                self.video_bytes as f64 * 8.0 / 1000.0 / seconds
            } else {
                0.0
            },
            audio_frames_expected: self.audio_span.count(),
            screen_frames_received: self.screen_received,
            screen_frames_expected: self.screen_span.iter().map(SequenceSpan::count).sum(),
            screen_frames_decoded: self.screen_decoded,
            screen_latency_ms_p95: percentile(&self.screen_latency_ms.samples, 0.95),
            screen_size: self.screen_size.map(|(w, h)| format!("{w}x{h}")),
            screen_marks: self.screen_marks,
        }
    }
}

/// Everyone's counters.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub peers: HashMap<ParticipantId, PeerStats>,
    /// Counters of earlier sessions, by name.
    archived: Vec<(String, ParticipantId, PeerStats)>,
    pub decode_errors: u64,
    /// The application's sounds played, by name.
    pub sounds_played: BTreeMap<String, u64>,
    /// From asking for a larger layer of a video to its first frame, in ms.
    pub layer_switch_ms: Reservoir,
    /// Counters at the last live snapshot, per participant.
    last: HashMap<ParticipantId, Snapshot>,
    bytes_sent_last: u64,
}

/// What the live figures are differences of.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Snapshot {
    pub video_decoded: u64,
    pub audio_decoded: u64,
    pub audio_concealed: u64,
    pub bytes_received: u64,
}

impl Stats {
    /// The counters of participant `id`, started on first use.
    pub fn peer(&mut self, id: ParticipantId) -> &mut PeerStats {
        self.peers.entry(id).or_default()
    }

    /// A new session: the counters so far are kept under the names they had.
    pub fn archive(&mut self, names: &HashMap<ParticipantId, String>) {
        for (id, stats) in self.peers.drain() {
            let name = names.get(&id).cloned().unwrap_or_else(|| id.to_string());
            self.archived.push((name, id, stats));
        }
        self.last.clear();
    }

    /// The counters' change since the last call, for `id` (and takes the new snapshot).
    pub fn since_last(&mut self, id: ParticipantId) -> (Snapshot, Snapshot) {
        let now = self
            .peers
            .get(&id)
            .map_or_else(Snapshot::default, |p| Snapshot {
                video_decoded: p.video_decoded,
                audio_decoded: p.audio_decoded,
                audio_concealed: p.audio_concealed,
                bytes_received: p.bytes_received,
            });
        let before = self.last.insert(id, now).unwrap_or_default();
        (now, before)
    }

    /// Bytes sent since the last call, given the total sent.
    pub fn sent_since_last(&mut self, total: u64) -> u64 {
        let delta = total.saturating_sub(self.bytes_sent_last);
        self.bytes_sent_last = total;
        delta
    }

    /// Fills the report's per-participant part and its error count, merging earlier sessions'
    /// counters into today's by name.
    pub fn finish(&self, report: &mut BotReport, names: &HashMap<ParticipantId, String>) {
        report.decode_errors = self.decode_errors;
        report.sounds_played = self.sounds_played.clone();
        report.layer_switches = self.layer_switch_ms.samples.len() as u64;
        report.layer_switch_ms_p50 = percentile(&self.layer_switch_ms.samples, 0.5);
        report.layer_switch_ms_p95 = percentile(&self.layer_switch_ms.samples, 0.95);
        let mut merged: BTreeMap<String, (ParticipantId, PeerStats)> = BTreeMap::new();
        let current = self.peers.iter().map(|(id, stats)| {
            let name = names.get(id).cloned().unwrap_or_else(|| id.to_string());
            (name, *id, stats)
        });
        let archived = self
            .archived
            .iter()
            .map(|(name, id, stats)| (name.clone(), *id, stats));
        for (name, id, stats) in archived.chain(current) {
            match merged.get_mut(&name) {
                // The newest session's id names the participant.
                Some((known, total)) => {
                    total.merge(stats);
                    *known = id;
                }
                None => {
                    merged.insert(name, (id, stats.clone()));
                }
            }
        }
        let seconds = report.seconds;
        let received: u64 = merged.values().map(|(_, stats)| stats.bytes_received).sum();
        report.downlink_kbps = if seconds > 0.0 {
            received as f64 * 8.0 / 1000.0 / seconds
        } else {
            0.0
        };
        report.peers = merged
            .into_iter()
            .map(|(name, (id, stats))| (name, stats.report(id, seconds)))
            .collect();
    }
}

/// The span of sequence numbers seen on a track: how many frames were sent while we were there,
/// whether they arrived or not.
#[derive(Debug, Default, Clone)]
pub(super) struct SequenceSpan {
    unwrapper: Unwrapper,
    first: Option<u64>,
    last: u64,
    /// Frames counted in earlier sessions' spans.
    extra: u64,
    /// The run starts at its first frame (a keyframe): set after a restart.
    fixed_start: bool,
}

impl SequenceSpan {
    pub fn see(&mut self, sequence: u32) {
        let extended = self.unwrapper.extend(sequence);
        let first = *self.first.get_or_insert(extended);
        // A straggler from before a restart (sent before the pause, delivered after the
        // keyframe that resumed us) belongs to the gap, which was never sent to us.
        if extended < first && !self.fixed_start {
            self.first = Some(extended);
        }
        self.last = self.last.max(extended);
    }

    /// A new run of this span's numbers starts at the next frame seen, a keyframe (the relay
    /// resumed us, or switched us back to this layer): the gap since the last run was never
    /// sent to us.
    pub fn restart(&mut self) {
        self.extra = self.count();
        self.first = None;
        self.last = 0;
        self.fixed_start = true;
    }

    /// The newest number of the current run, if it has any.
    fn newest(&self) -> Option<u32> {
        self.first.map(|_| self.last as u32)
    }

    pub fn count(&self) -> u64 {
        self.extra + self.first.map_or(0, |first| self.last - first + 1)
    }
}

/// Nothing of a video for this long, then a keyframe: the relay paused it (out of sight, or
/// more than the link or we could take) and resumed it; the frames between were never sent to
/// us.
const PAUSE: Duration = Duration::from_secs(1);

/// Frames of a resumed video that may come before the keyframe it resumed at.
const OVERTAKEN_HELD: usize = 30;
/// Frames after the keyframe still on their way when it came, beyond those that overtook it.
const OVERTAKEN_SLACK: usize = 4;

/// Where a received video's runs of numbers start again: after a pause (see [`PAUSE`]), at the
/// keyframe the relay resumed it with.
#[derive(Debug, Default)]
pub(super) struct Pauses {
    last_frame: Option<Instant>,
    resuming: Option<Resuming>,
}

/// Frames that came after a pause before its keyframe did: each frame has a stream of its own,
/// and the small ones after a keyframe can overtake it (seen in the browser test: after a 3.5 s
/// stall the first frame in was the one after the keyframe, and the 92 frames the relay never
/// sent were counted lost).
#[derive(Debug)]
struct Resuming {
    at: Instant,
    /// The span as it was before the pause ended.
    before: SequenceSpan,
    seen: Vec<u32>,
}

impl Resuming {
    /// Whether `sequence` is no newer than the run before the pause (a straggler from it).
    fn old(&self, sequence: u32) -> bool {
        self.before
            .newest()
            .is_some_and(|last| (sequence.wrapping_sub(last) as i32) <= 0)
    }

    /// Whether `keyframe`, arriving at `now`, is the one the video resumed at: soon after the
    /// pause ended, and just before every newer frame that came since.
    fn resumes_at(&self, keyframe: u32, now: Instant) -> bool {
        let newer: Vec<u32> = self
            .seen
            .iter()
            .copied()
            .filter(|&s| !self.old(s))
            .collect();
        now.saturating_duration_since(self.at) < PAUSE
            && newer.iter().all(|&later| {
                let after = later.wrapping_sub(keyframe) as i32;
                after > 0 && after as usize <= newer.len() + OVERTAKEN_SLACK
            })
    }
}

impl Pauses {
    /// A frame of the video arrived at `now`: counted in `span`, which starts a new run when the
    /// frame resumes the video.
    pub fn see(&mut self, span: &mut SequenceSpan, sequence: u32, keyframe: bool, now: Instant) {
        let paused = self
            .last_frame
            .is_some_and(|at| now.saturating_duration_since(at) >= PAUSE);
        self.last_frame = Some(now);
        if paused {
            self.resuming = None;
            if keyframe {
                span.restart();
            } else {
                self.resuming = Some(Resuming {
                    at: now,
                    before: span.clone(),
                    seen: vec![sequence],
                });
            }
            span.see(sequence);
            return;
        }
        let overtaken = keyframe
            && self
                .resuming
                .as_ref()
                .is_some_and(|resuming| resuming.resumes_at(sequence, now));
        if overtaken && let Some(resuming) = self.resuming.take() {
            // The keyframe the relay resumed at: the run starts here, with what overtook it
            // (stragglers from before the pause belong to the old run).
            let (old, newer): (Vec<u32>, Vec<u32>) =
                resuming.seen.iter().partition(|&&s| resuming.old(s));
            *span = resuming.before;
            for straggler in old {
                span.see(straggler);
            }
            span.restart();
            span.see(sequence);
            for later in newer {
                span.see(later);
            }
            return;
        }
        match &mut self.resuming {
            Some(resuming) if !keyframe && resuming.seen.len() < OVERTAKEN_HELD => {
                resuming.seen.push(sequence);
            }
            _ => self.resuming = None,
        }
        span.see(sequence);
    }

    /// The span started a new run for another reason (a switch of layer).
    pub fn restarted(&mut self) {
        self.resuming = None;
    }
}

/// Latency samples, at most [`Reservoir::CAPACITY`] of them, a uniform sample of the whole call
/// (so a day-long meeting does not grow memory), and the last [`Reservoir::RECENT`] as they came
/// (for the live figures).
#[derive(Debug, Default, Clone)]
pub(super) struct Reservoir {
    pub samples: Vec<f64>,
    latest: VecDeque<f64>,
    seen: u64,
    rng: u64,
}

impl Reservoir {
    const CAPACITY: usize = 20_000;
    const RECENT: usize = 30;

    pub fn push(&mut self, value: f64) {
        if self.latest.len() == Self::RECENT {
            self.latest.pop_front();
        }
        self.latest.push_back(value);
        self.seen += 1;
        if self.samples.len() < Self::CAPACITY {
            self.samples.push(value);
            return;
        }
        // xorshift64: no dependency, good enough to pick a slot.
        self.rng = if self.rng == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            self.rng
        };
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let slot = self.rng % self.seen;
        if let Some(sample) = self.samples.get_mut(slot as usize) {
            *sample = value;
        }
    }

    fn merge(&mut self, other: &Reservoir) {
        for value in &other.samples {
            self.push(*value);
        }
    }

    /// The last samples, newest last (at most [`Reservoir::RECENT`]).
    pub fn recent(&self) -> Vec<f64> {
        self.latest.iter().copied().collect()
    }
}

/// The `q` quantile (0..1) of `samples`, 0 when there are none.
pub(super) fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_samples_follow_a_long_call() {
        let mut reservoir = Reservoir::default();
        for _ in 0..Reservoir::CAPACITY + 1_000 {
            reservoir.push(10.0);
        }
        for _ in 0..Reservoir::RECENT {
            reservoir.push(250.0);
        }
        assert_eq!(reservoir.samples.len(), Reservoir::CAPACITY);
        assert_eq!(percentile(&reservoir.recent(), 0.5), 250.0);
        // The whole call's sample is still mostly the long, calm part.
        assert_eq!(percentile(&reservoir.samples, 0.5), 10.0);
    }

    /// Milliseconds from a start, as instants.
    fn clock() -> impl Fn(u64) -> Instant {
        let start = Instant::now();
        move |ms| start + Duration::from_millis(ms)
    }

    /// A video's first 20 frames at 30 fps (a keyframe, then deltas), counted.
    fn twenty_frames(at: &impl Fn(u64) -> Instant) -> (Pauses, SequenceSpan) {
        let (mut pauses, mut span) = (Pauses::default(), SequenceSpan::default());
        for sequence in 0..20 {
            let ms = u64::from(sequence) * 33;
            pauses.see(&mut span, sequence, sequence == 0, at(ms));
        }
        (pauses, span)
    }

    #[test]
    fn a_resumed_video_counts_from_its_keyframe_even_when_overtaken() {
        let at = clock();
        let (mut pauses, mut span) = twenty_frames(&at);
        assert_eq!(span.count(), 20);
        // 3.5 s of nothing; the relay resumed at keyframe 114, but 115 came in first.
        pauses.see(&mut span, 115, false, at(4_000));
        pauses.see(&mut span, 114, true, at(4_010));
        pauses.see(&mut span, 116, false, at(4_040));
        assert_eq!(
            span.count(),
            20 + 3,
            "94 frames never sent are not lost ones"
        );

        // A keyframe in order after a pause starts a run as before.
        pauses.see(&mut span, 200, true, at(6_000));
        pauses.see(&mut span, 201, false, at(6_030));
        assert_eq!(span.count(), 23 + 2);
    }

    #[test]
    fn a_straggler_first_after_the_pause_does_not_hide_the_resume() {
        let at = clock();
        let (mut pauses, mut span) = twenty_frames(&at);
        // Frame 18 was retransmitted long after; then the resumed run 114, 115 overtaken.
        pauses.see(&mut span, 18, false, at(2_000));
        pauses.see(&mut span, 115, false, at(2_010));
        pauses.see(&mut span, 114, true, at(2_020));
        assert_eq!(span.count(), 20 + 2);
    }

    #[test]
    fn frames_lost_after_a_pause_still_count_when_no_keyframe_resumed_it() {
        let at = clock();
        let (mut pauses, mut span) = (Pauses::default(), SequenceSpan::default());
        pauses.see(&mut span, 0, true, at(0));
        pauses.see(&mut span, 1, false, at(33));
        // A late link, not a pause the relay made: frames 2..9 lost, then 10 and on, and a
        // later keyframe (the encoder's own) is no reason to forget them.
        pauses.see(&mut span, 10, false, at(1_500));
        pauses.see(&mut span, 11, false, at(1_530));
        pauses.see(&mut span, 30, true, at(2_100));
        assert_eq!(span.count(), 31);
        // Nor is a keyframe from before the frames that came after the pause but too late.
        let (mut pauses, mut span) = (Pauses::default(), SequenceSpan::default());
        pauses.see(&mut span, 0, true, at(0));
        pauses.see(&mut span, 50, false, at(1_500));
        pauses.see(&mut span, 51, false, at(2_000));
        pauses.see(&mut span, 52, false, at(2_400));
        pauses.see(&mut span, 49, true, at(2_600));
        assert_eq!(span.count(), 53);
        // Nor a keyframe far behind what came after the pause (an encoder's, delayed).
        let (mut pauses, mut span) = (Pauses::default(), SequenceSpan::default());
        pauses.see(&mut span, 0, true, at(0));
        pauses.see(&mut span, 60, false, at(1_500));
        pauses.see(&mut span, 30, true, at(1_510));
        assert_eq!(span.count(), 61);
    }

    #[test]
    fn spans_count_what_was_sent_while_we_were_there() {
        let mut span = SequenceSpan::default();
        assert_eq!(span.count(), 0);
        span.see(10);
        span.see(14); // 11..13 lost
        span.see(12);
        assert_eq!(span.count(), 5);
        let mut wrapped = SequenceSpan::default();
        wrapped.see(u32::MAX);
        wrapped.see(1);
        assert_eq!(wrapped.count(), 3);
    }

    #[test]
    fn a_reservoir_stays_bounded_and_representative() {
        let mut reservoir = Reservoir::default();
        for i in 0..100_000 {
            reservoir.push(f64::from(i % 100));
        }
        assert_eq!(reservoir.samples.len(), Reservoir::CAPACITY);
        let median = percentile(&reservoir.samples, 0.5);
        assert!((40.0..60.0).contains(&median), "median {median}");
    }

    #[test]
    fn a_straggler_does_not_stretch_a_resumed_run_over_the_pause() {
        let mut span = SequenceSpan::default();
        for sequence in 0..20 {
            span.see(sequence);
        }
        // The relay paused us, then resumed at the keyframe numbered 120; a frame sent before
        // the pause comes after it.
        span.restart();
        span.see(120);
        span.see(21);
        for sequence in 121..130 {
            span.see(sequence);
        }
        assert_eq!(span.count(), 30);
        // Before any restart the first frames may come out of order.
        let mut fresh = SequenceSpan::default();
        fresh.see(5);
        fresh.see(3);
        assert_eq!(fresh.count(), 3);
    }

    #[test]
    fn sessions_are_merged_by_name_in_the_report() {
        let mut stats = Stats::default();
        let mut names = HashMap::from([(ParticipantId(1), "ada".to_owned())]);
        stats.peer(ParticipantId(1)).video_decoded = 10;
        stats.peer(ParticipantId(1)).video_span[0].see(0);
        stats.peer(ParticipantId(1)).video_span[0].see(9);
        stats.archive(&names);
        // After a relay restart, ada is number 2 and number 1 is someone else.
        names = HashMap::from([
            (ParticipantId(2), "ada".to_owned()),
            (ParticipantId(1), "bob".to_owned()),
        ]);
        stats.peer(ParticipantId(2)).video_decoded = 5;
        stats.peer(ParticipantId(2)).video_span[0].see(20);
        stats.peer(ParticipantId(2)).video_span[0].see(24);
        stats.peer(ParticipantId(1)).video_decoded = 1;
        let mut report = BotReport::default();
        stats.finish(&mut report, &names);
        let ada = &report.peers["ada"];
        assert_eq!((ada.id, ada.video_frames_decoded), (2, 15));
        assert_eq!(ada.video_frames_expected, 15);
        assert_eq!(report.peers["bob"].video_frames_decoded, 1);
    }
}
