//! 32-bit sequence numbers made 64-bit, so ordering survives wrap-around whatever number a
//! sender starts from.

/// Extends each sequence number to the 64-bit value nearest the highest one seen so far.
#[derive(Debug, Clone, Default)]
pub struct Unwrapper {
    highest: Option<u64>,
}

impl Unwrapper {
    /// The 64-bit value of `sequence`.
    pub fn extend(&mut self, sequence: u32) -> u64 {
        let Some(highest) = self.highest else {
            // Start one lap in, so a sequence from just before the wrap still sorts first.
            let value = (1 << 32) + u64::from(sequence);
            self.highest = Some(value);
            return value;
        };
        let delta = i64::from(sequence.wrapping_sub(highest as u32) as i32);
        let value = highest.saturating_add_signed(delta);
        self.highest = Some(highest.max(value));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_survives_the_wrap() {
        let mut unwrapper = Unwrapper::default();
        let a = unwrapper.extend(u32::MAX - 1);
        let b = unwrapper.extend(u32::MAX);
        let c = unwrapper.extend(0);
        let d = unwrapper.extend(1);
        assert!(a < b && b < c && c < d);
        assert_eq!(d - a, 3);
        // A late packet from before the wrap still sorts before.
        assert_eq!(unwrapper.extend(u32::MAX), b);
    }

    #[test]
    fn reordering_near_the_start_keeps_order() {
        let mut unwrapper = Unwrapper::default();
        let five = unwrapper.extend(5);
        let three = unwrapper.extend(3);
        assert_eq!(five - three, 2);
    }
}
