//! The picture every codec, source and panel works with: I420, tightly packed.

/// A picture in I420 (planar Y, then U and V at half resolution), tightly packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Width in pixels (even).
    pub width: usize,
    /// Height in pixels (even).
    pub height: usize,
    /// Luma, `width * height` bytes.
    pub y: Vec<u8>,
    /// Blue-difference chroma, `width/2 * height/2` bytes.
    pub u: Vec<u8>,
    /// Red-difference chroma, `width/2 * height/2` bytes.
    pub v: Vec<u8>,
}

impl VideoFrame {
    /// A black frame.
    pub fn new(width: usize, height: usize) -> Self {
        let chroma = (width / 2) * (height / 2);
        Self {
            width,
            height,
            y: vec![16; width * height],
            u: vec![128; chroma],
            v: vec![128; chroma],
        }
    }

    /// Bytes of the three planes together.
    pub fn byte_len(&self) -> usize {
        self.y.len() + self.u.len() + self.v.len()
    }

    /// The three planes one after the other (Y, U, V), as they cross to another thread or a
    /// browser `VideoFrame`.
    pub fn to_planes(&self) -> Vec<u8> {
        let mut planes = Vec::with_capacity(self.byte_len());
        planes.extend_from_slice(&self.y);
        planes.extend_from_slice(&self.u);
        planes.extend_from_slice(&self.v);
        planes
    }

    /// A frame from its three planes one after the other; `None` unless `planes` holds exactly
    /// a `width` x `height` I420 picture (even sizes).
    pub fn from_planes(width: usize, height: usize, planes: &[u8]) -> Option<Self> {
        if width < 2 || height < 2 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return None;
        }
        let luma = width.checked_mul(height)?;
        let chroma = (width / 2) * (height / 2);
        if planes.len() != luma + 2 * chroma {
            return None;
        }
        Some(Self {
            width,
            height,
            y: planes[..luma].to_vec(),
            u: planes[luma..luma + chroma].to_vec(),
            v: planes[luma + chroma..].to_vec(),
        })
    }
}

/// Copies `height` rows of `width` bytes from a plane with `stride` bytes per row into a tightly
/// packed one; rows missing from `src` are left as they were.
pub fn copy_plane(src: &[u8], stride: usize, dst: &mut [u8], width: usize, height: usize) {
    for (row, out) in dst.chunks_exact_mut(width).take(height).enumerate() {
        if let Some(line) = src.get(row * stride..row * stride + width) {
            out.copy_from_slice(line);
        }
    }
}

/// Converts packed RGB (`width * height * 3` bytes) to I420 at `frame`'s size, scaling with the
/// nearest pixel (BT.601, limited range, as H.264 expects).
pub fn rgb_to_i420(rgb: &[u8], width: usize, height: usize, frame: &mut VideoFrame) {
    packed_to_i420(rgb, 3, width, height, frame);
}

/// [`rgb_to_i420`] for packed RGBA (`width * height * 4` bytes; alpha is ignored), as screen
/// captures come.
pub fn rgba_to_i420(rgba: &[u8], width: usize, height: usize, frame: &mut VideoFrame) {
    packed_to_i420(rgba, 4, width, height, frame);
}

/// Packed pixels of `bytes` bytes each, red, green and blue first, to I420.
fn packed_to_i420(rgb: &[u8], bytes: usize, width: usize, height: usize, frame: &mut VideoFrame) {
    if width == 0 || height == 0 || rgb.len() < width * height * bytes {
        return;
    }
    let (fw, fh) = (frame.width, frame.height);
    let pixel = |x: usize, y: usize| {
        let sx = x * width / fw;
        let sy = y * height / fh;
        let i = (sy * width + sx) * bytes;
        (
            i32::from(rgb[i]),
            i32::from(rgb[i + 1]),
            i32::from(rgb[i + 2]),
        )
    };
    for y in 0..fh {
        for x in 0..fw {
            let (r, g, b) = pixel(x, y);
            frame.y[y * fw + x] =
                (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16).clamp(0, 255) as u8;
        }
    }
    for y in 0..fh / 2 {
        for x in 0..fw / 2 {
            let (r, g, b) = pixel(x * 2, y * 2);
            let i = y * (fw / 2) + x;
            frame.u[i] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
            frame.v[i] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
        }
    }
}

/// Converts an I420 picture to packed RGBA (`width * height * 4` bytes in `rgba`, resized to
/// fit), BT.601 limited range, opaque.
pub fn i420_to_rgba(frame: &VideoFrame, rgba: &mut Vec<u8>) {
    let (w, h) = (frame.width, frame.height);
    rgba.resize(w * h * 4, 255);
    for y in 0..h {
        for x in 0..w {
            let c = (y / 2) * (w / 2) + x / 2;
            let luma = 298 * (i32::from(frame.y[y * w + x]) - 16);
            let u = i32::from(frame.u.get(c).copied().unwrap_or(128)) - 128;
            let v = i32::from(frame.v.get(c).copied().unwrap_or(128)) - 128;
            let i = (y * w + x) * 4;
            rgba[i] = ((luma + 409 * v + 128) >> 8).clamp(0, 255) as u8;
            rgba[i + 1] = ((luma - 100 * u - 208 * v + 128) >> 8).clamp(0, 255) as u8;
            rgba[i + 2] = ((luma + 516 * u + 128) >> 8).clamp(0, 255) as u8;
            rgba[i + 3] = 255;
        }
    }
}

/// Scales an I420 picture to `dst`'s size, nearest pixel.
pub fn scale_i420(src: &VideoFrame, dst: &mut VideoFrame) {
    if src.width == dst.width && src.height == dst.height {
        dst.clone_from(src);
        return;
    }
    let plane = |from: &[u8], fw: usize, fh: usize, to: &mut [u8], tw: usize, th: usize| {
        for y in 0..th {
            let sy = y * fh / th.max(1);
            for x in 0..tw {
                let sx = x * fw / tw.max(1);
                to[y * tw + x] = from.get(sy * fw + sx).copied().unwrap_or(128);
            }
        }
    };
    let (fw, fh, tw, th) = (src.width, src.height, dst.width, dst.height);
    plane(&src.y, fw, fh, &mut dst.y, tw, th);
    plane(&src.u, fw / 2, fh / 2, &mut dst.u, tw / 2, th / 2);
    plane(&src.v, fw / 2, fh / 2, &mut dst.v, tw / 2, th / 2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgba_goes_to_i420_and_back() {
        // Four 2x2 blocks: white, black, a red and a blue (chroma is shared per block).
        let colours = [[255, 255, 255], [0, 0, 0], [200, 40, 30], [20, 60, 210]];
        let (w, h) = (4, 4);
        let mut rgba = vec![0u8; w * h * 4];
        for y in 0..h {
            for x in 0..w {
                let colour = colours[(y / 2) * 2 + x / 2];
                rgba[(y * w + x) * 4..][..3].copy_from_slice(&colour);
            }
        }
        let mut frame = VideoFrame::new(w, h);
        rgba_to_i420(&rgba, w, h, &mut frame);
        let mut back = Vec::new();
        i420_to_rgba(&frame, &mut back);
        for (n, (a, b)) in rgba.chunks(4).zip(back.chunks(4)).enumerate() {
            for c in 0..3 {
                assert!(a[c].abs_diff(b[c]) <= 6, "pixel {n}: {a:?} came back {b:?}");
            }
            assert_eq!(b[3], 255);
        }
    }

    #[test]
    fn rgb_converts_and_scales_to_i420() {
        // 4x2 RGB: left half white, right half pure red; scaled up to 8x4.
        let mut rgb = Vec::new();
        for _ in 0..2 {
            for x in 0..4 {
                rgb.extend_from_slice(if x < 2 {
                    &[255, 255, 255]
                } else {
                    &[255, 0, 0]
                });
            }
        }
        let mut frame = VideoFrame::new(8, 4);
        rgb_to_i420(&rgb, 4, 2, &mut frame);
        assert_eq!(frame.y[0], 235, "white is luma 235");
        assert_eq!(frame.u[0], 128);
        assert_eq!(frame.v[0], 128);
        assert_eq!(frame.y[7], 82, "red is luma 82");
        assert_eq!(frame.v[3], 240, "red is Cr 240");
        // Too short an input changes nothing.
        let before = frame.clone();
        rgb_to_i420(&rgb[..10], 4, 2, &mut frame);
        assert_eq!(frame, before);
    }

    #[test]
    fn planes_round_trip_and_wrong_sizes_are_refused() {
        let mut frame = VideoFrame::new(4, 2);
        frame.y[3] = 200;
        frame.v[1] = 7;
        let planes = frame.to_planes();
        assert_eq!(VideoFrame::from_planes(4, 2, &planes), Some(frame));
        assert_eq!(VideoFrame::from_planes(4, 2, &planes[1..]), None);
        assert_eq!(VideoFrame::from_planes(3, 2, &planes), None);
        assert_eq!(VideoFrame::from_planes(usize::MAX, 2, &planes), None);
    }

    #[test]
    fn scaling_halves_and_keeps_the_picture() {
        let mut big = VideoFrame::new(8, 8);
        big.y
            .iter_mut()
            .enumerate()
            .for_each(|(i, p)| *p = (i % 8) as u8 * 10);
        let mut small = VideoFrame::new(4, 4);
        scale_i420(&big, &mut small);
        assert_eq!(&small.y[..4], &[0, 20, 40, 60]);
    }
}
