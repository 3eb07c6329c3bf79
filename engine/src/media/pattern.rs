//! A synthetic moving test pattern that carries its sender's id and frame number in the picture.
//!
//! Two rows of 32 blocks each at the top of the picture hold, as black and white blocks, a 16-bit
//! value followed by its complement: row 0 the sender id, row 1 the frame number. Blocks are
//! macroblock-aligned (16 px at 640 wide), so they survive compression and a receiver can check
//! what it decoded with [`read_marks`]. Below, a colour wash in the sender's hue and a bar that
//! moves every frame give the encoder real motion to work with.

use super::{VideoFrame, VideoSource};

const BITS: usize = 16;
const BLOCKS_PER_ROW: usize = 2 * BITS;
const WHITE: u8 = 235;
const BLACK: u8 = 16;
const WASH_PERIOD: usize = 128;

/// What [`read_marks`] reads back from a decoded picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    /// The sender id in the picture.
    pub sender: u16,
    /// The frame number in the picture.
    pub frame: u16,
}

/// The test pattern of one sender.
#[derive(Debug, Clone)]
pub struct TestPattern {
    width: usize,
    height: usize,
    sender: u16,
    frame: u32,
    ramp: Vec<u8>,
}

impl TestPattern {
    /// A pattern for `sender` at `width` x `height` (even, at least 64 x 64).
    pub fn new(sender: u16, width: usize, height: usize) -> Self {
        Self {
            width: width.max(64) & !1,
            height: height.max(64) & !1,
            sender,
            frame: 0,
            ramp: Vec::new(),
        }
    }

    /// Marks the pictures from now on as `sender`'s (a rejoin can bring a new id).
    pub fn set_sender(&mut self, sender: u16) {
        self.sender = sender;
    }

    /// The hue (as U, V chroma) that tells this sender's pattern apart.
    pub fn chroma(sender: u16) -> (u8, u8) {
        let angle = f32::from(sender % 12) * std::f32::consts::TAU / 12.0;
        (
            (128.0 + 90.0 * angle.cos()) as u8,
            (128.0 + 90.0 * angle.sin()) as u8,
        )
    }
}

fn block_size(width: usize) -> usize {
    ((width / BLOCKS_PER_ROW) & !1).clamp(2, 16)
}

impl VideoSource for TestPattern {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn set_sender(&mut self, sender: u16) {
        TestPattern::set_sender(self, sender);
    }

    fn next_frame(&mut self, frame: &mut VideoFrame) {
        let (w, h) = (self.width, self.height);
        if frame.width != w || frame.height != h {
            *frame = VideoFrame::new(w, h);
        }
        let t = self.frame as usize;
        let block = block_size(w);
        let marks_bottom = 2 * block;
        // Luma: a diagonal wash scrolling with time, and a bright vertical bar sweeping across.
        // Each line is a window into one ramp, so a frame costs a copy per line.
        if self.ramp.len() != w + WASH_PERIOD {
            self.ramp = (0..w + WASH_PERIOD)
                .map(|i| 60 + (i % WASH_PERIOD) as u8)
                .collect();
        }
        let bar = (t * 8) % w;
        let bar_cols = bar.saturating_sub(11)..(bar + 12).min(w);
        for row in marks_bottom..h {
            let line = &mut frame.y[row * w..(row + 1) * w];
            let start = (row + t * 2) % WASH_PERIOD;
            line.copy_from_slice(&self.ramp[start..start + w]);
            line[bar_cols.clone()].fill(WHITE);
        }
        // Chroma: the sender's hue, fading towards grey at the bottom.
        let (u, v) = Self::chroma(self.sender);
        let (cw, ch) = (w / 2, h / 2);
        for row in 0..ch {
            let fade = row as f32 / ch as f32 * 0.5;
            let cu = (f32::from(u) + (128.0 - f32::from(u)) * fade) as u8;
            let cv = (f32::from(v) + (128.0 - f32::from(v)) * fade) as u8;
            frame.u[row * cw..(row + 1) * cw].fill(cu);
            frame.v[row * cw..(row + 1) * cw].fill(cv);
        }
        // The marks, on a black background.
        frame.y[..marks_bottom * w].fill(BLACK);
        let values = [self.sender, self.frame as u16];
        for (mark_row, value) in values.into_iter().enumerate() {
            for bit in 0..BLOCKS_PER_ROW {
                let one = if bit < BITS {
                    value >> (BITS - 1 - bit) & 1 == 1
                } else {
                    value >> (2 * BITS - 1 - bit) & 1 == 0
                };
                let level = if one { WHITE } else { BLACK };
                for row in mark_row * block..(mark_row + 1) * block {
                    frame.y[row * w + bit * block..row * w + (bit + 1) * block].fill(level);
                }
            }
        }
        for row in 0..marks_bottom / 2 {
            frame.u[row * cw..(row + 1) * cw].fill(128);
            frame.v[row * cw..(row + 1) * cw].fill(128);
        }
        self.frame = self.frame.wrapping_add(1);
    }
}

/// Reads the marks from a decoded luma plane; `None` when they are unreadable (a value and its
/// complement disagree).
///
/// The picture may be the pattern itself or a simulcast layer scaled down from it by 2 or 4,
/// whose blocks are then the larger picture's halved or quartered (a 320x240 layer of a 640x480
/// pattern has 8 px blocks, where a pattern drawn at 320 wide has 10 px ones).
pub fn read_marks(y: &[u8], stride: usize, width: usize, height: usize) -> Option<Marks> {
    [1usize, 2, 4].into_iter().find_map(|scale| {
        let block = (block_size(width * scale) / scale).max(1);
        read_marks_with(y, stride, width, height, block)
    })
}

fn read_marks_with(
    y: &[u8],
    stride: usize,
    width: usize,
    height: usize,
    block: usize,
) -> Option<Marks> {
    if width < BLOCKS_PER_ROW * block || height < 2 * block || stride < width {
        return None;
    }
    let mut values = [0u16; 2];
    for (mark_row, value) in values.iter_mut().enumerate() {
        let mut bits = 0u32;
        for bit in 0..BLOCKS_PER_ROW {
            let row = mark_row * block + block / 2;
            let col = bit * block + block / 2;
            let px = *y.get(row * stride + col)?;
            bits = bits << 1 | u32::from(px >= 128);
        }
        let (high, low) = ((bits >> BITS) as u16, bits as u16);
        if high != !low {
            return None;
        }
        *value = high;
    }
    Some(Marks {
        sender: values[0],
        frame: values[1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_read_back_from_the_raw_picture() {
        for (w, h) in [(640, 480), (320, 240), (1280, 720), (64, 64)] {
            let mut pattern = TestPattern::new(0xBEEF, w, h);
            let mut frame = VideoFrame::new(w, h);
            for n in 0..3u16 {
                pattern.next_frame(&mut frame);
                let marks = read_marks(&frame.y, w, w, h);
                assert_eq!(
                    marks,
                    Some(Marks {
                        sender: 0xBEEF,
                        frame: n
                    }),
                    "{w}x{h}"
                );
            }
        }
    }

    /// A simulcast layer is the top picture scaled down: its marks read back at every size
    /// (a 320x240 layer of 640x480 once came out unreadable, its blocks 8 px where 10 were
    /// looked for).
    #[test]
    fn marks_read_back_from_pictures_scaled_down() {
        for (w, h) in [(640, 480), (1280, 720)] {
            let mut pattern = TestPattern::new(0x0102, w, h);
            let mut frame = VideoFrame::new(w, h);
            pattern.next_frame(&mut frame);
            for scale in [2, 4] {
                let (sw, sh) = (w / scale, h / scale);
                let small: Vec<u8> = (0..sh)
                    .flat_map(|row| (0..sw).map(move |col| (row, col)))
                    .map(|(row, col)| frame.y[row * scale * w + col * scale])
                    .collect();
                assert_eq!(
                    read_marks(&small, sw, sw, sh),
                    Some(Marks {
                        sender: 0x0102,
                        frame: 0
                    }),
                    "{w}x{h} scaled by 1/{scale}"
                );
            }
        }
    }

    #[test]
    fn a_damaged_mark_is_unreadable_not_misread() {
        let mut pattern = TestPattern::new(7, 640, 480);
        let mut frame = VideoFrame::new(640, 480);
        pattern.next_frame(&mut frame);
        // Flip the first block of the sender row.
        for row in 0..16 {
            for col in 0..16 {
                frame.y[row * 640 + col] = 255 - frame.y[row * 640 + col];
            }
        }
        assert_eq!(read_marks(&frame.y, 640, 640, 480), None);
    }

    #[test]
    fn the_picture_moves_and_senders_differ_in_hue() {
        let mut pattern = TestPattern::new(1, 320, 240);
        let mut a = VideoFrame::new(320, 240);
        let mut b = VideoFrame::new(320, 240);
        pattern.next_frame(&mut a);
        pattern.next_frame(&mut b);
        assert_ne!(a.y[40 * 320..], b.y[40 * 320..]);
        assert_ne!(TestPattern::chroma(1), TestPattern::chroma(2));
    }
}
