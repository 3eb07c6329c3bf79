//! Native codecs: H.264 through `openh264` (Cisco's encoder and decoder, built from source) and
//! Opus through libopus.

use openh264::OpenH264API;
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::{YUVSlices, YUVSource};

use super::{AUDIO_FRAME_SAMPLES, SAMPLE_RATE, VideoFrame};

/// A codec failed; counted by callers, never fatal.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// H.264.
    #[error("H.264: {0}")]
    Video(String),
    /// Opus.
    #[error("Opus: {0}")]
    Audio(#[from] opus::Error),
}

/// One encoded picture in Annex-B.
#[derive(Debug, Clone)]
pub struct EncodedVideo {
    /// The NAL units, each behind a start code.
    pub data: Vec<u8>,
    /// It is an IDR picture (decodable on its own, with SPS and PPS in front).
    pub keyframe: bool,
}

/// H.264 Constrained Baseline encoder for real-time video.
pub struct VideoEncoder {
    encoder: Encoder,
    force_keyframe: bool,
}

impl VideoEncoder {
    /// An encoder targeting `bitrate` bits/s at `fps`, with a keyframe every `keyframe_every`
    /// frames.
    pub fn new(bitrate: u32, fps: f32, keyframe_every: u32) -> Result<Self, CodecError> {
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .level(Level::Level_3_1)
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps))
            .skip_frames(true)
            .intra_frame_period(IntraFramePeriod::from_num_frames(keyframe_every));
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| CodecError::Video(e.to_string()))?;
        Ok(Self {
            encoder,
            force_keyframe: true,
        })
    }

    /// Makes the next picture a keyframe (a subscriber asked, or a frame was lost).
    pub fn request_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Encodes one picture; the data is empty when rate control skipped it.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<EncodedVideo, CodecError> {
        if std::mem::take(&mut self.force_keyframe) {
            self.encoder.force_intra_frame();
        }
        let source = YUVSlices::new(
            (&frame.y, &frame.u, &frame.v),
            (frame.width, frame.height),
            (frame.width, frame.width / 2, frame.width / 2),
        );
        let bitstream = self
            .encoder
            .encode(&source)
            .map_err(|e| CodecError::Video(e.to_string()))?;
        Ok(EncodedVideo {
            keyframe: matches!(bitstream.frame_type(), FrameType::IDR | FrameType::I),
            data: bitstream.to_vec(),
        })
    }
}

/// H.264 decoder.
pub struct VideoDecoder {
    decoder: Decoder,
}

impl VideoDecoder {
    /// A decoder.
    pub fn new() -> Result<Self, CodecError> {
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| CodecError::Video(e.to_string()))?;
        Ok(Self { decoder })
    }

    /// Decodes one Annex-B picture; `Ok(None)` when the decoder needs more input first.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<DecodedPicture<'_>>, CodecError> {
        let picture = self
            .decoder
            .decode(data)
            .map_err(|e| CodecError::Video(e.to_string()))?;
        Ok(picture.map(|yuv| DecodedPicture { yuv }))
    }
}

/// A decoded picture, borrowed from the decoder until the next call.
pub struct DecodedPicture<'a> {
    yuv: DecodedYUV<'a>,
}

impl DecodedPicture<'_> {
    /// Width and height.
    pub fn dimensions(&self) -> (usize, usize) {
        self.yuv.dimensions()
    }

    /// The luma plane and its stride.
    pub fn luma(&self) -> (&[u8], usize) {
        (self.yuv.y(), self.yuv.strides().0)
    }

    /// Copies the picture into a tightly packed [`VideoFrame`], reusing its buffers.
    pub fn copy_to(&self, frame: &mut VideoFrame) {
        let (w, h) = self.dimensions();
        if w < 2 || h < 2 {
            return;
        }
        if frame.width != w || frame.height != h {
            *frame = VideoFrame::new(w, h);
        }
        let (sy, su, sv) = self.yuv.strides();
        copy_plane(self.yuv.y(), sy, &mut frame.y, w, h);
        copy_plane(self.yuv.u(), su, &mut frame.u, w / 2, h / 2);
        copy_plane(self.yuv.v(), sv, &mut frame.v, w / 2, h / 2);
    }
}

fn copy_plane(src: &[u8], stride: usize, dst: &mut [u8], width: usize, height: usize) {
    for (row, out) in dst.chunks_exact_mut(width).take(height).enumerate() {
        if let Some(line) = src.get(row * stride..row * stride + width) {
            out.copy_from_slice(line);
        }
    }
}

/// Opus encoder, 48 kHz mono, 20 ms frames.
pub struct AudioEncoder {
    encoder: opus::Encoder,
    packet: Vec<u8>,
}

impl AudioEncoder {
    /// An encoder at `bitrate` bits/s.
    pub fn new(bitrate: i32) -> Result<Self, CodecError> {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        encoder.set_bitrate(opus::Bitrate::Bits(bitrate))?;
        Ok(Self {
            encoder,
            packet: vec![0; 1000],
        })
    }

    /// Encodes 20 ms of samples into one packet.
    pub fn encode(&mut self, samples: &[i16; AUDIO_FRAME_SAMPLES]) -> Result<&[u8], CodecError> {
        let len = self.encoder.encode(samples, &mut self.packet)?;
        Ok(&self.packet[..len])
    }
}

/// Opus decoder with packet-loss concealment.
pub struct AudioDecoder {
    decoder: opus::Decoder,
}

impl AudioDecoder {
    /// A decoder, 48 kHz mono.
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            decoder: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
        })
    }

    /// Decodes one packet into 20 ms of samples.
    pub fn decode(
        &mut self,
        packet: &[u8],
        out: &mut [i16; AUDIO_FRAME_SAMPLES],
    ) -> Result<usize, CodecError> {
        Ok(self.decoder.decode(packet, out, false)?)
    }

    /// Invents 20 ms for a lost packet (Opus packet-loss concealment).
    pub fn conceal(&mut self, out: &mut [i16; AUDIO_FRAME_SAMPLES]) -> Result<usize, CodecError> {
        Ok(self.decoder.decode(&[], out, false)?)
    }
}

/// The cameras and microphones the join screen offers, as (choice, label).
pub fn list_devices() -> (super::DeviceList, super::DeviceList) {
    let cameras = super::camera::list()
        .into_iter()
        .map(|(index, name)| (index.to_string(), format!("{index}: {name}")))
        .collect();
    let microphones = crate::audio::device::list()
        .0
        .into_iter()
        .enumerate()
        .map(|(index, name)| (index.to_string(), format!("{index}: {name}")))
        .collect();
    (cameras, microphones)
}
