//! Kafka framing: every request and response is a big-endian i32 size
//! followed by that many bytes. The size comes from the peer, so it is
//! checked against the configured bound before anything is sized from it:
//! a 2 GB prefix is refused, never allocated.

use bytes::BytesMut;

use crate::DecodeError;

/// Bytes of the size prefix.
pub const FRAME_PREFIX_LEN: usize = 4;

/// Reads the size prefix. The returned size is at most `frame_bytes_max` and
/// is therefore safe to reserve.
pub fn frame_size(
    prefix: [u8; FRAME_PREFIX_LEN],
    frame_bytes_max: u32,
) -> Result<u32, DecodeError> {
    let size = i32::from_be_bytes(prefix);
    if size < 0 || size as u32 > frame_bytes_max {
        return Err(DecodeError::FrameSize {
            size: i64::from(size),
            max: frame_bytes_max,
        });
    }
    Ok(size as u32)
}

/// Splits one complete frame (without its prefix) off the front of `buf`.
/// `Ok(None)` means more bytes are needed; then `buf` is reserved up to
/// the checked frame size, never beyond it.
pub fn split_frame(
    buf: &mut BytesMut,
    frame_bytes_max: u32,
) -> Result<Option<BytesMut>, DecodeError> {
    if buf.len() < FRAME_PREFIX_LEN {
        return Ok(None);
    }
    let mut prefix = [0u8; FRAME_PREFIX_LEN];
    prefix.copy_from_slice(&buf[..FRAME_PREFIX_LEN]);
    let size = frame_size(prefix, frame_bytes_max)? as usize;
    let total = FRAME_PREFIX_LEN + size;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total);
    let _prefix = frame.split_to(FRAME_PREFIX_LEN);
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use proptest::prelude::*;

    #[test]
    fn absurd_sizes_are_refused_before_allocation() {
        assert!(frame_size(0x7fff_ffffu32.to_be_bytes(), 100 << 20).is_err());
        assert!(frame_size((-1i32).to_be_bytes(), 100 << 20).is_err());
        assert!(frame_size(i32::MIN.to_be_bytes(), u32::MAX).is_err());
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff, 0, 0][..]);
        assert!(split_frame(&mut buf, 1 << 20).is_err());
        assert!(buf.capacity() < 1 << 20);
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut buf = BytesMut::new();
        buf.put_i32(5);
        buf.put_slice(b"abc");
        assert_eq!(split_frame(&mut buf, 100).unwrap(), None);
        buf.put_slice(b"de");
        buf.put_i32(0);
        assert_eq!(&split_frame(&mut buf, 100).unwrap().unwrap()[..], b"abcde");
        assert_eq!(&split_frame(&mut buf, 100).unwrap().unwrap()[..], b"");
        assert!(buf.is_empty());
    }

    proptest! {
        #[test]
        fn frames_round_trip(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10),
                             cut in 0usize..4000) {
            let mut wire = BytesMut::new();
            for f in &frames {
                wire.put_i32(f.len() as i32);
                wire.put_slice(f);
            }
            // Deliver the bytes in two parts at an arbitrary cut.
            let cut = cut.min(wire.len());
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(f) = split_frame(&mut buf, 1000).unwrap() { got.push(f.to_vec()); }
            buf.put_slice(&wire[cut..]);
            while let Some(f) = split_frame(&mut buf, 1000).unwrap() { got.push(f.to_vec()); }
            prop_assert_eq!(got, frames);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn split_never_panics(data: Vec<u8>, max in 0u32..10_000) {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = split_frame(&mut buf, max) {}
        }
    }
}
