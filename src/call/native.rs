//! The native call engine: video encoded and decoded on threads of their own (openh264), audio
//! encoded, played out through a jitter buffer and decoded (libopus) on the 20 ms tick of the
//! async task (tokio).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use rotunda_proto::{
    FromRelay, MediaFrame, MediaHeader, ParticipantId, ToRelay, TrackId, TrackKind,
};
use tokio::sync::mpsc;
use web_time::Instant;

use super::{
    AUDIO_BITRATE, AUDIO_INDEX, AppLink, AudioTrack, BotReport, CallConfig, CallEvent, Command,
    ControlLimiter, MAX_PICTURE, Pictures, SharedStats, StatusSnapshot, VIDEO_INDEX,
    VideoSourceFactory, VideoSpec, Voices, finish_report, handle_control, latency_ms, live_stats,
    media_header, now_us, on_joined, publish_audio, publish_video, rate_out, relay_to_app, soft,
    status_line,
};
use crate::audio::Playout;
use crate::media::pattern::{TestPattern, read_marks};
use crate::media::tone::Tone;
use crate::media::{
    AUDIO_FRAME_SAMPLES, AudioEncoder, VideoDecoder, VideoEncoder, VideoFrame, VideoSource,
};
use crate::net::{self, Event};
use crate::sync::lock;

/// Audio packets buffered before playout starts (2 x 20 ms).
pub(super) const JITTER_TARGET: usize = 2;
/// Audio packets held at most (1.2 s).
pub(super) const JITTER_CAPACITY: usize = 60;
/// Packets beyond the target before playout skips ahead (1 s): a browser sends in bursts (its
/// page's thread stalls while it draws without a GPU), and those must be played, not trimmed.
pub(super) const JITTER_CATCH_UP: usize = 50;

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
            if let Some(link) = &link {
                link.emit(CallEvent::Failed(format!("{error:#}")));
            }
            return Err(error);
        }
    };
    let me = session.id();
    let (mut report, stats, mut others) = on_joined(&config, &session, link.as_ref())?;

    let stop = Arc::new(AtomicBool::new(false));
    // However this function ends, the encoder thread stops.
    let _stop_on_return = StopOnDrop(stop.clone());
    let keyframe_wanted = Arc::new(AtomicBool::new(false));
    let camera_on = Arc::new(AtomicBool::new(
        !link.as_ref().is_some_and(|link| link.camera_off),
    ));
    let mut microphone_on = !link.as_ref().is_some_and(|link| link.microphone_off);
    if !microphone_on || !camera_on.load(Ordering::Relaxed) {
        session.send(ToRelay::Mute {
            audio: !microphone_on,
            video: !camera_on.load(Ordering::Relaxed),
        })?;
    }
    let (video_out_tx, mut video_out) = mpsc::channel::<MediaFrame>(4);
    let mut encoder_thread = None;
    if let Some(spec) = config.video {
        publish_video(&session, spec)?;
        let open: VideoSourceFactory = link
            .as_mut()
            .and_then(|link| link.camera.take())
            .unwrap_or_else(|| {
                Box::new(move |id: ParticipantId| {
                    Box::new(TestPattern::new(id.0 as u16, spec.width, spec.height))
                        as Box<dyn VideoSource>
                })
            });
        let encoder = VideoEncoderThread {
            spec,
            out: video_out_tx,
            stop: stop.clone(),
            keyframe_wanted: keyframe_wanted.clone(),
            camera_on: camera_on.clone(),
            preview: link.as_ref().map(|link| (me, link.pictures.clone())),
        };
        encoder_thread = Some(
            std::thread::Builder::new()
                .name("video-encode".into())
                .spawn(move || encoder.run(open(me)))?,
        );
    }
    let mut audio_encoder = None;
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

    let (decode_tx, decode_rx) = mpsc::channel::<DecodeJob>(64);
    let (keyframe_tx, mut keyframe_requests) = mpsc::channel::<TrackId>(64);
    let decoder_thread = {
        let stats = stats.clone();
        let pictures = link.as_ref().map(|link| link.pictures.clone());
        std::thread::Builder::new()
            .name("video-decode".into())
            .spawn({
                let stop = stop.clone();
                move || decode_video(decode_rx, stats, keyframe_tx, pictures, stop)
            })?
    };
    let mut limiter = ControlLimiter::new();
    let voices = link.as_ref().map(|link| link.voices.clone());
    let (_commands_open, mut commands) = match link.as_mut() {
        Some(link) => {
            let (tx, rx) = mpsc::channel(1);
            (tx, std::mem::replace(&mut link.commands, rx))
        }
        // No application: a channel nobody sends on, kept open for the whole call.
        None => mpsc::channel(1),
    };

    let mut audio_sequence = 0u32;
    let mut video_sequence = 0u32;
    let mut samples = [0i16; AUDIO_FRAME_SAMPLES];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut status = tokio::time::interval(Duration::from_secs(1));
    status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_status = StatusSnapshot::default();
    let mut last_sent = (0u64, Instant::now());
    let started = Instant::now();
    // "Until the application leaves" is a year.
    let deadline = tokio::time::sleep(
        config
            .duration
            .unwrap_or(Duration::from_secs(365 * 24 * 3600)),
    );
    tokio::pin!(deadline);

    loop {
        tokio::select! {
            () = &mut deadline => break,
            _ = tick.tick() => {
                if let Some((encoder, source)) = &mut audio_encoder {
                    source.next_samples(&mut samples);
                    let capture_us = now_us();
                    if microphone_on {
                        match encoder.encode(&samples) {
                            Ok(packet) => {
                                let frame = MediaFrame::new(media_header(AUDIO_INDEX, audio_sequence, capture_us, true), packet);
                                audio_sequence = audio_sequence.wrapping_add(1);
                                session.send_audio(&frame)?;
                                report.audio_frames_sent += 1;
                                report.audio_bytes_sent += frame.payload().len() as u64;
                            }
                            Err(error) => tracing::warn!(%error, "audio encode failed"),
                        }
                    }
                }
                play_audio(&mut others.audio, &stats, voices.as_deref());
            }
            Some(mut frame) = video_out.recv() => {
                let header = MediaHeader { sequence: video_sequence, ..frame.header };
                frame = MediaFrame::new(header, frame.payload());
                let bytes = frame.payload().len() as u64;
                // A frame dropped here still takes its number, so receivers see the gap.
                video_sequence = video_sequence.wrapping_add(1);
                if session.send_video(frame) {
                    report.video_bytes_sent += bytes;
                    report.video_frames_sent += 1;
                } else {
                    keyframe_wanted.store(true, Ordering::Relaxed);
                }
            }
            Some(track) = keyframe_requests.recv() => {
                limiter.request_keyframe(&session, track)?;
            }
            command = commands.recv() => {
                // The application gone counts as leaving.
                let Some(command) = command else { break };
                match command {
                    Command::Chat(text) => soft(session.send(ToRelay::Chat { text }))?,
                    Command::Pose(pose) => limiter.send_optional(&session, ToRelay::Pose(pose))?,
                    Command::Microphone(on) => {
                        microphone_on = on;
                        soft(session.send(ToRelay::Mute { audio: !on, video: !camera_on.load(Ordering::Relaxed) }))?;
                    }
                    Command::Camera(on) => {
                        camera_on.store(on, Ordering::Relaxed);
                        if on {
                            keyframe_wanted.store(true, Ordering::Relaxed);
                        }
                        soft(session.send(ToRelay::Mute { audio: !microphone_on, video: !on }))?;
                    }
                    Command::Leave => break,
                }
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                match event {
                    Event::Media(frame, TrackKind::Video) => {
                        let track = frame.header.track;
                        let released = others.receive_video(&stats, frame);
                        if released.need_keyframe {
                            limiter.request_keyframe(&session, track)?;
                        }
                        for frame in released.frames {
                            if decode_tx.try_send(DecodeJob::Frame(track, frame)).is_err() {
                                // The decoder fell behind: start again at a keyframe.
                                others.reorders.remove(&track);
                                limiter.request_keyframe(&session, track)?;
                                break;
                            }
                        }
                    }
                    Event::Media(frame, TrackKind::Audio) => others.receive_audio(&stats, frame),
                    Event::Control(message) => {
                        if let Some(link) = &link {
                            relay_to_app(link, &message);
                        }
                        if let FromRelay::ParticipantLeft { id, .. } = &message {
                            // After the frames already queued, so none of them brings it back.
                            if decode_tx.try_send(DecodeJob::Forget(*id)).is_err()
                                && let Some(link) = &link
                            {
                                link.pictures.remove(*id);
                            }
                        }
                        if let Some(error) = handle_control(message, &session, &mut others, &mut report, &keyframe_wanted)? {
                            report.error = Some(error);
                            break;
                        }
                    }
                    Event::Closed(code) => {
                        report.error = Some(format!("the relay closed the session ({code:?})"));
                        break;
                    }
                }
            }
            _ = status.tick() => {
                let now = StatusSnapshot::take(&stats);
                if config.status {
                    println!("{}", status_line(&config.join.name, started.elapsed(), &others, &now, &last_status, &session));
                }
                if let Some(link) = &link {
                    let (kbps_out, seconds) = rate_out(&report, &mut last_sent);
                    link.emit(CallEvent::Stats(live_stats(&session, &others, &now, &last_status, seconds, kbps_out)));
                }
                last_status = now;
            }
        }
    }

    stop.store(true, Ordering::Relaxed);
    drop(decode_tx);
    report.seconds = started.elapsed().as_secs_f64();
    report.rtt_ms = session.rtt().as_secs_f64() * 1000.0;
    if report.error.is_none() {
        session.leave().await;
    }
    // Joined off the async workers (which also carry the in-process relay).
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(thread) = encoder_thread {
            let _ = thread.join();
        }
        let _ = decoder_thread.join();
    })
    .await;
    finish_report(&mut report, &stats, &others.names);
    if let Some(link) = &link {
        link.emit(CallEvent::Ended(Box::new(report.clone())));
    }
    Ok(report)
}

/// Work for the decoder thread.
enum DecodeJob {
    /// A frame to decode.
    Frame(TrackId, MediaFrame),
    /// Someone left: drop their decoders and picture.
    Forget(ParticipantId),
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn play_audio(
    tracks: &mut HashMap<TrackId, AudioTrack>,
    stats: &SharedStats,
    voices: Option<&Voices>,
) {
    // A buffer of its own: a peer's short packet must never leave our microphone's (or
    // another peer's) samples behind it.
    let mut out = [0i16; AUDIO_FRAME_SAMPLES];
    for (track, audio) in tracks.iter_mut() {
        let played = match audio.jitter.pop() {
            Playout::Packet(frame) => {
                let decoded = audio.decoder.decode(frame.payload(), &mut out);
                let mut stats = lock(stats);
                match decoded {
                    Ok(n) => {
                        let peer = stats.peer(track.participant);
                        peer.audio_decoded += 1;
                        peer.audio_latency_ms
                            .push(latency_ms(frame.header.capture_us));
                        n.min(out.len())
                    }
                    Err(_) => {
                        stats.decode_errors += 1;
                        0
                    }
                }
            }
            Playout::Conceal => match audio.decoder.conceal(&mut out) {
                Ok(n) => {
                    lock(stats).peer(track.participant).audio_concealed += 1;
                    n.min(out.len())
                }
                Err(_) => 0,
            },
            Playout::Silence => 0,
        };
        if played > 0
            && let Some(voices) = voices
        {
            voices.push(track.participant, &out[..played]);
        }
    }
}

/// The encoder thread's state.
struct VideoEncoderThread {
    spec: VideoSpec,
    out: mpsc::Sender<MediaFrame>,
    stop: Arc<AtomicBool>,
    keyframe_wanted: Arc<AtomicBool>,
    camera_on: Arc<AtomicBool>,
    /// Where the local picture goes for the self-view, under our own id.
    preview: Option<(ParticipantId, Arc<Pictures>)>,
}

impl VideoEncoderThread {
    /// Paces the source at the frame rate, encodes, hands frames over; encodes nothing while the
    /// camera is off.
    fn run(self, mut source: Box<dyn VideoSource>) {
        let spec = self.spec;
        let mut encoder = match VideoEncoder::new(spec.bitrate(), spec.fps as f32, spec.fps * 3) {
            Ok(encoder) => encoder,
            Err(error) => return tracing::error!(%error, "cannot start the video encoder"),
        };
        let (w, h) = source.dimensions();
        let mut picture = VideoFrame::new(w, h);
        let interval = Duration::from_secs_f64(1.0 / f64::from(spec.fps));
        let mut next = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else if now - next > interval * 2 {
                next = now; // fell behind: skip rather than burst
            }
            next += interval;
            if !self.camera_on.load(Ordering::Relaxed) {
                continue;
            }
            source.next_frame(&mut picture);
            let capture_us = now_us();
            if let Some((me, pictures)) = &self.preview {
                pictures.store_frame(*me, &picture);
            }
            if self.keyframe_wanted.swap(false, Ordering::Relaxed) {
                encoder.request_keyframe();
            }
            match encoder.encode(&picture) {
                Ok(encoded) if !encoded.data.is_empty() => {
                    let frame = MediaFrame::new(
                        media_header(VIDEO_INDEX, 0, capture_us, encoded.keyframe),
                        &encoded.data,
                    );
                    if self.out.try_send(frame).is_err() {
                        self.keyframe_wanted.store(true, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "video encode failed"),
            }
        }
    }
}

/// The decoder thread: one H.264 decoder per track; checks every picture's marks. Stops when the
/// call does, dropping what is still queued.
fn decode_video(
    mut jobs: mpsc::Receiver<DecodeJob>,
    stats: SharedStats,
    keyframes: mpsc::Sender<TrackId>,
    pictures: Option<Arc<Pictures>>,
    stop: Arc<AtomicBool>,
) {
    let mut decoders: HashMap<TrackId, VideoDecoder> = HashMap::new();
    // Tracks whose panel went out of sight: they resume at a keyframe.
    let mut paused: HashSet<TrackId> = HashSet::new();
    while let Some(job) = jobs.blocking_recv() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let (track, frame) = match job {
            DecodeJob::Frame(track, frame) => (track, frame),
            DecodeJob::Forget(id) => {
                decoders.retain(|track, _| track.participant != id);
                paused.retain(|track| track.participant != id);
                if let Some(pictures) = &pictures {
                    pictures.remove(id);
                }
                continue;
            }
        };
        // Out of sight: not decoded. Back in sight: skipped up to the next keyframe.
        let skip = match &pictures {
            Some(pictures) if pictures.is_hidden(track.participant) => {
                paused.insert(track);
                true
            }
            Some(_) if paused.contains(&track) && !frame.header.keyframe => {
                // The call's limiter keeps these requests sparse.
                let _ = keyframes.try_send(track);
                true
            }
            _ => {
                paused.remove(&track);
                false
            }
        };
        if skip {
            lock(&stats).peer(track.participant).video_skipped += 1;
            continue;
        }
        let decoder = match decoders.entry(track) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => match VideoDecoder::new() {
                Ok(decoder) => entry.insert(decoder),
                Err(error) => return tracing::error!(%error, "cannot start a video decoder"),
            },
        };
        match decoder.decode(frame.payload()) {
            Ok(Some(picture)) => {
                let (w, h) = picture.dimensions();
                if w > MAX_PICTURE.0 || h > MAX_PICTURE.1 {
                    tracing::debug!(w, h, %track.participant, "picture too large, not shown");
                    lock(&stats).decode_errors += 1;
                    continue;
                }
                if let Some(pictures) = &pictures {
                    pictures.store(track.participant, &picture);
                }
                let (y, stride) = picture.luma();
                let marks = read_marks(y, stride, w, h);
                let latency = latency_ms(frame.header.capture_us);
                let mut stats = lock(&stats);
                let peer = stats.peer(track.participant);
                peer.video_decoded += 1;
                peer.video_latency_ms.push(latency);
                if marks.map(|m| m.sender) != Some(track.participant.0 as u16) {
                    peer.wrong_sender += 1;
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, %track.participant, "video decode failed");
                lock(&stats).decode_errors += 1;
                let _ = keyframes.try_send(track);
            }
        }
    }
}
