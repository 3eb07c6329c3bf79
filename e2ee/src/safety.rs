//! The safety code: what people compare to know they share one group with no one between them.

/// Groups of digits in a safety code.
const GROUPS: usize = 6;
/// Digits in a group.
const DIGITS: u32 = 5;
/// Bytes of the authenticator each group is read from.
const BYTES_PER_GROUP: usize = 5;

/// The safety code of an epoch: 30 digits in groups of five, read from the first 30 bytes of its
/// epoch authenticator (five bytes, taken as a number, modulo 100 000 for each group; the way
/// Signal shows its safety numbers). Equal for every member of the epoch; a relay that split the
/// room into groups of its own would show different codes on either side.
///
/// `None` for an authenticator shorter than 30 bytes (every MLS cipher suite's is 32 or more).
pub fn safety_code(authenticator: &[u8]) -> Option<String> {
    let bytes = authenticator.get(..GROUPS * BYTES_PER_GROUP)?;
    let groups: Vec<String> = bytes
        .chunks_exact(BYTES_PER_GROUP)
        .map(|chunk| {
            let value = chunk
                .iter()
                .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
            format!(
                "{:0width$}",
                value % 10u64.pow(DIGITS),
                width = DIGITS as usize
            )
        })
        .collect();
    Some(groups.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_digits_in_six_groups() {
        let code = safety_code(&[0xff; 32]).expect("long enough");
        assert_eq!(code, "27775 27775 27775 27775 27775 27775");
        let code = safety_code(&(0u8..32).collect::<Vec<_>>()).expect("long enough");
        assert_eq!(code.len(), 35);
        assert!(code.split(' ').all(|g| g.len() == 5));
        assert_eq!(safety_code(&[0; 29]), None);
    }
}
