//! LEB128 variable-length unsigned integers: 7 bits per byte, low bits first, the high bit set on
//! every byte but the last. Small numbers (timestamp deltas, ids) take one or two bytes.

/// The most bytes one encoded `u64` can take.
pub const MAX_LEN: usize = 10;

/// Encodes `value` at the start of `out` and returns the number of bytes written.
///
/// `out` must have room for the encoding: [`MAX_LEN`] bytes always suffice.
///
/// # Panics
///
/// Panics if `out` is shorter than the encoding.
#[inline(always)]
pub fn encode(mut value: u64, out: &mut [u8]) -> usize {
    let mut i = 0;
    while value >= 0x80 {
        out[i] = (value as u8) | 0x80;
        value >>= 7;
        i += 1;
    }
    out[i] = value as u8;
    i + 1
}

/// Appends the encoding of `value` to `out`.
pub fn push(value: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; MAX_LEN];
    let n = encode(value, &mut buf);
    out.extend_from_slice(&buf[..n]);
}

/// The number of bytes [`encode`] writes for `value`.
pub fn encoded_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Decodes one value from `input` starting at `*pos` and advances `*pos` past it.
///
/// Returns `None` when the input ends inside the value or the value does not fit in a `u64`
/// (more than ten bytes, or a tenth byte above 1); `*pos` is then left unchanged.
#[inline]
pub fn decode(input: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    let mut i = *pos;
    loop {
        let byte = *input.get(i)?;
        i += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            *pos = i;
            return Some(value);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (value, bytes) in cases {
            let mut buf = [0u8; MAX_LEN];
            let n = encode(value, &mut buf);
            assert_eq!(&buf[..n], bytes, "encoding of {value}");
            assert_eq!(encoded_len(value), n);
            let mut pos = 0;
            assert_eq!(decode(bytes, &mut pos), Some(value));
            assert_eq!(pos, n);
        }
    }

    #[test]
    fn rejects_truncated_and_overlong() {
        let mut pos = 0;
        assert_eq!(decode(&[0x80], &mut pos), None);
        assert_eq!(pos, 0);
        assert_eq!(decode(&[], &mut pos), None);
        let overlong = [0xff; 11];
        assert_eq!(decode(&overlong, &mut pos), None);
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(decode(&too_big, &mut pos), None);
    }

    proptest! {
        #[test]
        fn round_trip(values in proptest::collection::vec(any::<u64>(), 0..64)) {
            let mut out = Vec::new();
            for &v in &values {
                push(v, &mut out);
            }
            let mut pos = 0;
            for &v in &values {
                prop_assert_eq!(decode(&out, &mut pos), Some(v));
            }
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut pos = 0;
            while decode(&bytes, &mut pos).is_some() {}
        }
    }
}
