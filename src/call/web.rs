//! The browser call engine: the same call as natively (same wire, same statistics, same
//! report), with WebCodecs in place of openh264 and libopus, and the page's event loop in place
//! of threads. Every 5 ms the engine takes what the network, the codecs and the application
//! delivered; audio runs on a 20 ms clock, video at the frame rate.
//!
//! Once a second the page logs `rotunda:stats {json}`: the report so far, in the shape of
//! `rotunda bot --stats-json`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use rotunda_proto::{
    FromRelay, MediaFrame, MediaHeader, ParticipantId, ToRelay, TrackId, TrackKind,
};
use tokio::sync::mpsc::error::TryRecvError;
use web_time::Instant;

use super::{
    AUDIO_BITRATE, AUDIO_INDEX, AppLink, AudioTrack, BotReport, CallConfig, CallEvent, Command,
    ControlLimiter, MAX_PICTURE, Others, Pictures, SharedStats, StatusSnapshot, VIDEO_INDEX,
    finish_report, handle_control, latency_ms, live_stats, media_header, now_us, on_joined,
    publish_audio, publish_video, rate_out, relay_to_app, soft, status_line,
};
use crate::audio::Playout;
use crate::media::pattern::{TestPattern, read_marks};
use crate::media::tone::Tone;
use crate::media::web::PictureSink;
use crate::media::{
    AUDIO_FRAME_SAMPLES, AudioEncoder, AudioSource, DecodedPicture, VideoDecoder, VideoEncoder,
    VideoFrame, VideoSource,
};
use crate::net::{self, Event};
use crate::sync::lock;
use crate::web as js;

/// How often the engine looks for work (ms).
const POLL_MS: i32 = 5;
/// Events handled per poll, at most.
const EVENTS_PER_POLL: usize = 512;
const AUDIO_TICK: Duration = Duration::from_millis(20);
/// Audio packets buffered before playout starts (100 ms): the page's thread, which the call
/// shares with drawing, stalls, and so do the other browsers that send to it.
pub(super) const JITTER_TARGET: usize = 5;
/// Audio packets held at most (1.5 s).
pub(super) const JITTER_CAPACITY: usize = 75;
/// Packets beyond the target before playout skips ahead (1.2 s): after a stall the engine takes
/// in everything that arrived, then plays every tick it missed, so the depth it sees between the
/// two is its own doing, not the network's.
pub(super) const JITTER_CATCH_UP: usize = 60;

/// The video being published.
struct Publisher {
    source: Box<dyn VideoSource>,
    encoder: VideoEncoder,
    picture: VideoFrame,
    interval: Duration,
    next: Instant,
    spec: super::VideoSpec,
}

/// Runs a call to the end of its duration (or until the application leaves) and reports what it
/// saw.
pub async fn run(config: CallConfig, mut link: Option<AppLink>) -> anyhow::Result<BotReport> {
    let joined = net::connect(config.join.clone()).await.with_context(|| {
        format!(
            "joining room {:?} at {}",
            config.join.room, config.join.relay
        )
    });
    let (session, mut events) = match joined {
        Ok(joined) => joined,
        Err(error) => {
            js::log_error(&format!("rotunda:error {error:#}"));
            if let Some(link) = &link {
                link.emit(CallEvent::Failed(format!("{error:#}")));
            }
            return Err(error);
        }
    };
    let me = session.id();
    js::log(&format!("rotunda:joined {{\"id\":{}}}", me.0));
    let (mut report, stats, mut others) = on_joined(&config, &session, link.as_ref())?;

    let keyframe_wanted = AtomicBool::new(false);
    let mut camera_on = !link.as_ref().is_some_and(|link| link.camera_off);
    let mut microphone_on = !link.as_ref().is_some_and(|link| link.microphone_off);
    if !microphone_on || !camera_on {
        session.send(ToRelay::Mute {
            audio: !microphone_on,
            video: !camera_on,
        })?;
    }
    let mut publisher = None;
    if let Some(spec) = config.video {
        publish_video(&session, spec)?;
        let source = match link.as_mut().and_then(|link| link.camera.take()) {
            Some(open) => open(me),
            None => Box::new(TestPattern::new(me.0 as u16, spec.width, spec.height)),
        };
        let (w, h) = source.dimensions();
        publisher = Some(Publisher {
            encoder: VideoEncoder::new(w, h, spec.bitrate(), spec.fps, spec.fps * 3)?,
            picture: VideoFrame::new(w, h),
            source,
            interval: Duration::from_secs_f64(1.0 / f64::from(spec.fps)),
            next: Instant::now(),
            spec,
        });
    }
    let mut audio_encoder: Option<(AudioEncoder, Box<dyn AudioSource>)> = None;
    if config.audio {
        publish_audio(&session)?;
        let source = link
            .as_mut()
            .and_then(|link| link.microphone.take())
            .unwrap_or_else(|| Box::new(Tone::new(me.0 as u16)));
        audio_encoder = Some((AudioEncoder::new(AUDIO_BITRATE)?, source));
    }
    for text in &config.chat {
        session.send(ToRelay::Chat { text: text.clone() })?;
    }

    let pictures = link.as_ref().map(|link| link.pictures.clone());
    let voices = link.as_ref().map(|link| link.voices.clone());
    let mut video = VideoTracks::new(stats.clone(), pictures.clone());
    let mut limiter = ControlLimiter::new();
    let mut commands = link.as_mut().map(|link| {
        let (_, rx) = tokio::sync::mpsc::channel(1);
        std::mem::replace(&mut link.commands, rx)
    });

    let mut audio_sequence = 0u32;
    let mut video_sequence = 0u32;
    let mut samples = [0i16; AUDIO_FRAME_SAMPLES];
    let started = Instant::now();
    let mut next_audio = started;
    let mut next_status = started + Duration::from_secs(1);
    let mut last_status = StatusSnapshot::default();
    let mut last_sent = (0u64, Instant::now());
    let deadline = config.duration.map(|duration| started + duration);

    'call: loop {
        js::sleep_ms(POLL_MS).await;
        let now = Instant::now();
        if deadline.is_some_and(|deadline| now >= deadline) {
            break;
        }

        // What arrived first, so that the audio played out below finds it in the jitter buffers
        // (after a stall, many 20 ms ticks are played at once).
        for _ in 0..EVENTS_PER_POLL {
            let event = match events.try_recv() {
                Ok(event) => event,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => break 'call,
            };
            match event {
                Event::Media(frame, TrackKind::Video) => {
                    let track = frame.header.track;
                    let released = others.receive_video(&stats, frame);
                    if released.need_keyframe {
                        limiter.request_keyframe(&session, track)?;
                    }
                    for frame in released.frames {
                        video.decode(track, &frame);
                    }
                }
                Event::Media(frame, TrackKind::Audio) => others.receive_audio(&stats, frame),
                Event::Control(message) => {
                    if let Some(link) = &link {
                        relay_to_app(link, &message);
                    }
                    if let FromRelay::ParticipantLeft { id, .. } = &message {
                        video.forget(*id);
                    }
                    if let Some(error) = handle_control(
                        message,
                        &session,
                        &mut others,
                        &mut report,
                        &keyframe_wanted,
                    )? {
                        report.error = Some(error);
                        break 'call;
                    }
                }
                Event::Closed(code) => {
                    report.error = Some(format!("the relay closed the session ({code:?})"));
                    break 'call;
                }
            }
        }

        // Audio: 20 ms at a time, catching up after a stall (a slow frame of the page) of up to
        // two seconds.
        if now.duration_since(next_audio) > Duration::from_millis(2000) {
            next_audio = now;
        }
        while next_audio <= now {
            next_audio += AUDIO_TICK;
            if let Some((encoder, source)) = &mut audio_encoder {
                source.next_samples(&mut samples);
                // When catching up, each 20 ms is stamped with its own time.
                let behind = now.duration_since(next_audio - AUDIO_TICK).as_micros() as u64;
                let capture_us = now_us().saturating_sub(behind);
                if microphone_on && let Err(error) = encoder.encode(&samples, capture_us) {
                    bevy::log::warn!(%error, "audio encode failed");
                    if let Ok(fresh) = AudioEncoder::new(AUDIO_BITRATE) {
                        *encoder = fresh;
                    }
                }
            }
            play_audio(&mut others.audio, &stats);
        }
        if let Some((encoder, _)) = &mut audio_encoder {
            while let Some((packet, capture_us)) = encoder.take_output() {
                let frame = MediaFrame::new(
                    media_header(AUDIO_INDEX, audio_sequence, capture_us, true),
                    &packet,
                );
                audio_sequence = audio_sequence.wrapping_add(1);
                session.send_audio(&frame)?;
                report.audio_frames_sent += 1;
                report.audio_bytes_sent += frame.payload().len() as u64;
            }
        }
        take_voices(&mut others.audio, &stats, voices.as_deref());

        // Video: one picture per frame interval, skipping rather than bursting when behind.
        if let Some(publisher) = &mut publisher {
            if now >= publisher.next {
                if now.duration_since(publisher.next) > publisher.interval * 2 {
                    publisher.next = now;
                }
                publisher.next += publisher.interval;
                if camera_on {
                    publisher.source.next_frame(&mut publisher.picture);
                    let capture_us = now_us();
                    if let Some(pictures) = &pictures {
                        pictures.store_frame(me, &publisher.picture);
                    }
                    if keyframe_wanted.swap(false, Ordering::Relaxed) {
                        publisher.encoder.request_keyframe();
                    }
                    if let Err(error) = publisher.encoder.encode(&publisher.picture, capture_us) {
                        bevy::log::warn!(%error, "video encode failed; starting a new encoder");
                        let spec = publisher.spec;
                        let (w, h) = (publisher.picture.width, publisher.picture.height);
                        if let Ok(fresh) =
                            VideoEncoder::new(w, h, spec.bitrate(), spec.fps, spec.fps * 3)
                        {
                            publisher.encoder = fresh;
                        }
                    }
                }
            }
            while let Some((encoded, capture_us)) = publisher.encoder.take_output() {
                let frame = MediaFrame::new(
                    media_header(VIDEO_INDEX, video_sequence, capture_us, encoded.keyframe),
                    &encoded.data,
                );
                let bytes = frame.payload().len() as u64;
                // A frame dropped here still takes its number, so receivers see the gap.
                video_sequence = video_sequence.wrapping_add(1);
                if session.send_video(frame) {
                    report.video_bytes_sent += bytes;
                    report.video_frames_sent += 1;
                } else {
                    publisher.encoder.request_keyframe();
                }
            }
        }

        for track in video.keyframes_wanted() {
            limiter.request_keyframe(&session, track)?;
        }

        if let Some(commands) = &mut commands {
            loop {
                let command = match commands.try_recv() {
                    Ok(command) => command,
                    Err(TryRecvError::Empty) => break,
                    // The application gone counts as leaving.
                    Err(TryRecvError::Disconnected) => break 'call,
                };
                match command {
                    Command::Chat(text) => soft(session.send(ToRelay::Chat { text }))?,
                    Command::Pose(pose) => limiter.send_optional(&session, ToRelay::Pose(pose))?,
                    Command::Microphone(on) => {
                        microphone_on = on;
                        soft(session.send(ToRelay::Mute {
                            audio: !on,
                            video: !camera_on,
                        }))?;
                    }
                    Command::Camera(on) => {
                        camera_on = on;
                        if on {
                            keyframe_wanted.store(true, Ordering::Relaxed);
                        }
                        soft(session.send(ToRelay::Mute {
                            audio: !microphone_on,
                            video: !on,
                        }))?;
                    }
                    Command::Leave => break 'call,
                }
            }
        }

        if now >= next_status {
            next_status = now + Duration::from_secs(1);
            let snapshot = StatusSnapshot::take(&stats);
            if config.status {
                js::log(&status_line(
                    &config.join.name,
                    started.elapsed(),
                    &others,
                    &snapshot,
                    &last_status,
                    &session,
                ));
            }
            report.seconds = started.elapsed().as_secs_f64();
            report.rtt_ms = session.rtt().as_secs_f64() * 1000.0;
            log_stats(&report, &stats, &others);
            if let Some(link) = &link {
                let (kbps_out, seconds) = rate_out(&report, &mut last_sent);
                link.emit(CallEvent::Stats(live_stats(
                    &session,
                    &others,
                    &snapshot,
                    &last_status,
                    seconds,
                    kbps_out,
                )));
            }
            last_status = snapshot;
        }
    }

    report.seconds = started.elapsed().as_secs_f64();
    report.rtt_ms = session.rtt().as_secs_f64() * 1000.0;
    if report.error.is_none() {
        session.leave().await;
    }
    log_stats(&report, &stats, &others);
    finish_report(&mut report, &stats, &others.names);
    if let Some(link) = &link {
        link.emit(CallEvent::Ended(Box::new(report.clone())));
    }
    Ok(report)
}

/// Logs the report so far as `rotunda:stats {json}`.
fn log_stats(report: &BotReport, stats: &SharedStats, others: &Others) {
    let mut snapshot = report.clone();
    finish_report(&mut snapshot, stats, &others.names);
    match serde_json::to_string(&snapshot) {
        Ok(json) => js::log(&format!("rotunda:stats {json}")),
        Err(error) => js::log_error(&format!("rotunda:error statistics: {error}")),
    }
}

/// Plays out one 20 ms packet of every audio track into its decoder (or notes a loss).
fn play_audio(tracks: &mut HashMap<TrackId, AudioTrack>, stats: &SharedStats) {
    for (track, audio) in tracks.iter_mut() {
        if audio.decoder.is_broken() {
            match crate::media::AudioDecoder::new() {
                Ok(fresh) => audio.decoder = fresh,
                Err(_) => continue,
            }
        }
        match audio.jitter.pop() {
            Playout::Packet(frame) => {
                if audio
                    .decoder
                    .decode(frame.payload(), frame.header.capture_us)
                    .is_err()
                {
                    lock(stats).decode_errors += 1;
                }
            }
            // WebCodecs has no loss concealment: the gap stays silent.
            Playout::Conceal => lock(stats).peer(track.participant).audio_concealed += 1,
            Playout::Silence => {}
        }
    }
}

/// Hands what the audio decoders produced to the speakers.
fn take_voices(
    tracks: &mut HashMap<TrackId, AudioTrack>,
    stats: &SharedStats,
    voices: Option<&super::Voices>,
) {
    let mut pcm = Vec::new();
    for (track, audio) in tracks.iter_mut() {
        while let Some((samples, capture_us)) = audio.decoder.take_output() {
            {
                let mut stats = lock(stats);
                let peer = stats.peer(track.participant);
                peer.audio_decoded += 1;
                peer.audio_latency_ms.push(latency_ms(capture_us));
            }
            if let Some(voices) = voices {
                pcm.clear();
                pcm.extend(
                    samples
                        .iter()
                        .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16),
                );
                voices.push(track.participant, &pcm);
            }
        }
    }
}

/// The video decoders, one per track, and what their pictures become: statistics (with the
/// sender's marks checked) and panel pictures.
struct VideoTracks {
    decoders: HashMap<TrackId, VideoDecoder>,
    /// Tracks whose panel went out of sight: they resume at a keyframe.
    paused: HashSet<TrackId>,
    keyframes: Rc<RefCell<Vec<TrackId>>>,
    stats: SharedStats,
    pictures: Option<Arc<Pictures>>,
}

impl VideoTracks {
    fn new(stats: SharedStats, pictures: Option<Arc<Pictures>>) -> Self {
        Self {
            decoders: HashMap::new(),
            paused: HashSet::new(),
            keyframes: Rc::default(),
            stats,
            pictures,
        }
    }

    fn keyframes_wanted(&mut self) -> Vec<TrackId> {
        std::mem::take(&mut *self.keyframes.borrow_mut())
    }

    fn forget(&mut self, id: ParticipantId) {
        self.decoders.retain(|track, _| track.participant != id);
        self.paused.retain(|track| track.participant != id);
        if let Some(pictures) = &self.pictures {
            pictures.remove(id);
        }
    }

    fn decode(&mut self, track: TrackId, frame: &MediaFrame) {
        let header: &MediaHeader = &frame.header;
        // Out of sight: not decoded. Back in sight: skipped up to the next keyframe.
        let skip = match &self.pictures {
            Some(pictures) if pictures.is_hidden(track.participant) => {
                self.paused.insert(track);
                true
            }
            Some(_) if self.paused.contains(&track) && !header.keyframe => {
                self.keyframes.borrow_mut().push(track);
                true
            }
            _ => {
                self.paused.remove(&track);
                false
            }
        };
        if skip {
            lock(&self.stats).peer(track.participant).video_skipped += 1;
            return;
        }
        if self
            .decoders
            .get(&track)
            .is_some_and(|decoder| decoder.is_broken())
        {
            self.decoders.remove(&track);
        }
        if !self.decoders.contains_key(&track) {
            match VideoDecoder::new(self.sink(track)) {
                Ok(decoder) => {
                    self.decoders.insert(track, decoder);
                }
                Err(error) => {
                    bevy::log::error!(%error, "cannot start a video decoder");
                    return;
                }
            }
        }
        let Some(decoder) = self.decoders.get_mut(&track) else {
            return;
        };
        if let Err(error) = decoder.decode(frame.payload(), header.keyframe, header.capture_us) {
            bevy::log::debug!(%error, %track.participant, "video not decoded");
            lock(&self.stats).decode_errors += u64::from(!error.to_string().contains("keyframe"));
            self.keyframes.borrow_mut().push(track);
        }
    }

    /// Where the pictures of `track` go.
    fn sink(&self, track: TrackId) -> PictureSink {
        let stats = self.stats.clone();
        let pictures = self.pictures.clone();
        Rc::new(move |picture: VideoFrame, capture_us: u64| {
            let (w, h) = (picture.width, picture.height);
            if w > MAX_PICTURE.0 || h > MAX_PICTURE.1 {
                lock(&stats).decode_errors += 1;
                return;
            }
            if let Some(pictures) = &pictures {
                pictures.store(track.participant, &DecodedPicture::new(&picture));
            }
            let marks = read_marks(&picture.y, w, w, h);
            let mut stats = lock(&stats);
            let peer = stats.peer(track.participant);
            peer.video_decoded += 1;
            peer.video_latency_ms.push(latency_ms(capture_us));
            if marks.map(|m| m.sender) != Some(track.participant.0 as u16) {
                peer.wrong_sender += 1;
            }
        })
    }
}
