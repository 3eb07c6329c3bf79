//! An Opus decoder in Rust (`opus-rs`, a port of libopus), for the browser's call worker.
//!
//! WebCodecs' `AudioDecoder` decodes on the browser's media thread, behind the software video
//! encoders and decoders of the same page: on a busy machine its output came up to 2.5 s after
//! the packet (browser test, 2 cores: `decodeQueueSize` 14 and growing), so voices fell seconds
//! behind while their packets had arrived in 100 ms. Decoding 20 ms of Opus takes a fraction of
//! a millisecond, so the worker does it itself, at once, as the native engine does with libopus.
//! It also conceals a lost packet as libopus does (WebCodecs cannot).

use super::{AudioDecoder, CodecError, CodecName, InlineOpus, OpusFrames};
use crate::media::{AUDIO_FRAME_SAMPLES, SAMPLE_RATE};

const OPUS: CodecName = CodecName::Opus;

/// Opus at 48 kHz mono, decoded on the caller's thread: output is ready when `decode` returns.
pub fn decoder() -> Result<Box<dyn AudioDecoder>, CodecError> {
    let decoder =
        opus_rs::OpusDecoder::new(SAMPLE_RATE as i32, 1).map_err(|reason| CodecError::Start {
            codec: OPUS,
            reason: reason.into(),
        })?;
    Ok(Box::new(InlineOpus::new(PureOpus(decoder))))
}

struct PureOpus(opus_rs::OpusDecoder);

impl OpusFrames for PureOpus {
    fn frame(&mut self, packet: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
        self.0
            .decode(packet, AUDIO_FRAME_SAMPLES, out)
            .map_err(|reason| CodecError::Failed {
                codec: OPUS,
                reason: reason.into(),
            })
    }
}

#[cfg(all(test, native))]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::DecodedAudio;

    /// A voice-like test signal: a few harmonics with a slow vibrato.
    fn voice(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                let f = 180.0 + 20.0 * (t * 5.0).sin();
                (1..=5)
                    .map(|h| (std::f32::consts::TAU * f * h as f32 * t).sin() * 0.2 / h as f32)
                    .sum()
            })
            .collect()
    }

    fn encoded(signal: &[f32]) -> Vec<Vec<u8>> {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
                .expect("a libopus encoder");
        encoder
            .set_bitrate(opus::Bitrate::Bits(32_000))
            .expect("a bitrate");
        signal
            .chunks_exact(AUDIO_FRAME_SAMPLES)
            .map(|frame| encoder.encode_vec_float(frame, 1500).expect("encoded"))
            .collect()
    }

    fn drain(decoder: &mut Box<dyn AudioDecoder>) -> Vec<DecodedAudio> {
        std::iter::from_fn(|| decoder.poll_output())
            .map(|out| out.expect("decoded"))
            .collect()
    }

    #[test]
    fn it_decodes_what_libopus_encodes_as_libopus_does() {
        let signal = voice(AUDIO_FRAME_SAMPLES * 100);
        let packets = encoded(&signal);
        let mut ours = decoder().expect("a decoder");
        let mut reference =
            opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).expect("a libopus decoder");
        let (mut error, mut energy) = (0.0f64, 0.0f64);
        for (i, packet) in packets.iter().enumerate() {
            ours.decode(Bytes::copy_from_slice(packet), i as u64 * 20_000)
                .expect("queued");
            let out = drain(&mut ours);
            assert_eq!(out.len(), 1, "one output for each packet, at once");
            assert_eq!(out[0].samples.len(), AUDIO_FRAME_SAMPLES);
            assert_eq!(out[0].timestamp_us, i as u64 * 20_000);
            assert!(!out[0].concealed);
            let mut expected = vec![0.0f32; AUDIO_FRAME_SAMPLES];
            reference
                .decode_float(packet, &mut expected, false)
                .expect("libopus decoded");
            for (a, b) in out[0].samples.iter().zip(&expected) {
                error += f64::from(a - b).powi(2);
                energy += f64::from(*b).powi(2);
            }
        }
        let snr = 10.0 * (energy / error.max(1e-12)).log10();
        assert!(energy > 1.0, "the reference decoded silence");
        assert!(snr > 40.0, "{snr:.1} dB from libopus's own decoding");
    }

    #[test]
    fn a_lost_packet_is_made_up_from_the_voice_before_it() {
        let packets = encoded(&voice(AUDIO_FRAME_SAMPLES * 20));
        let mut decoder = decoder().expect("a decoder");
        for packet in &packets[..10] {
            decoder
                .decode(Bytes::copy_from_slice(packet), 0)
                .expect("queued");
        }
        drain(&mut decoder);
        decoder.conceal(200_000).expect("concealed");
        let out = drain(&mut decoder);
        assert_eq!(out.len(), 1);
        assert!(out[0].concealed);
        assert_eq!(out[0].samples.len(), AUDIO_FRAME_SAMPLES);
        let level = out[0].samples.iter().map(|s| s.abs()).fold(0.0, f32::max);
        assert!(level > 0.01, "concealment went silent at once ({level})");
    }

    #[test]
    fn junk_from_a_peer_is_an_error_or_noise_never_a_panic() {
        let mut decoder = decoder().expect("a decoder");
        // A linear congruential generator's top bytes: the same junk every run.
        let mut x = 1_u64;
        let mut byte = move || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        };
        for len in (0..400).cycle().take(20_000) {
            let packet: Vec<u8> = (0..len).map(|_| byte()).collect();
            let _ = decoder.decode(Bytes::from(packet), 0);
            for sound in drain_any(&mut decoder).flatten() {
                assert!(sound.samples.iter().all(|s| s.is_finite()));
            }
        }
        // Junk behind every table of contents a 20 ms packet may have, which the decoder
        // itself then reads.
        for round in 0..20_000 {
            let configs = [1u8, 5, 9, 13, 15, 19, 23, 27, 31];
            let toc = configs[round % configs.len()] << 3 | (round as u8 / 9 % 2) << 2;
            let len = 3 + round % 300;
            let packet: Vec<u8> = std::iter::once(toc)
                .chain((1..len).map(|_| byte()))
                .collect();
            decoder
                .decode(Bytes::from(packet), 0)
                .expect("a 20 ms packet is taken");
            for sound in drain_any(&mut decoder).flatten() {
                assert!(sound.samples.iter().all(|s| s.is_finite()));
            }
        }
        // And it still decodes a real voice afterwards.
        let packets = encoded(&voice(AUDIO_FRAME_SAMPLES * 5));
        let mut fresh = 0;
        for packet in &packets {
            decoder
                .decode(Bytes::copy_from_slice(packet), 0)
                .expect("queued");
            fresh += drain_any(&mut decoder).filter(Result::is_ok).count();
        }
        assert_eq!(fresh, packets.len());
    }

    fn drain_any(
        decoder: &mut Box<dyn AudioDecoder>,
    ) -> impl Iterator<Item = Result<DecodedAudio, CodecError>> + '_ {
        std::iter::from_fn(|| decoder.poll_output())
    }
}
