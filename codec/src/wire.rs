//! Primitive Kafka wire types over a byte slice: a bounds-checked reader
//! (every read checks the bytes left, every length is checked before it is
//! used) and writers for the same types.

use bytes::{BufMut, BytesMut};

use crate::DecodeError;

/// A cursor over a byte slice. Never panics: reads past the end are
/// [`DecodeError::Truncated`].
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                needed: n,
                left: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub fn uuid(&mut self) -> Result<[u8; 16], DecodeError> {
        self.array()
    }

    /// Unsigned varint, at most 5 bytes (a u32).
    pub fn uvarint(&mut self) -> Result<u32, DecodeError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(1)?[0];
            if i == 4 && b > 0x0f {
                return Err(DecodeError::Malformed("varint overflows u32".into()));
            }
            value |= u32::from(b & 0x7f) << (i * 7);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Malformed("varint longer than 5 bytes".into()))
    }

    /// Zigzag varlong, at most 10 bytes: the fields of a v2 record.
    pub fn varlong(&mut self) -> Result<i64, DecodeError> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = self.take(1)?[0];
            raw |= u64::from(b & 0x7f) << (i * 7);
            if b & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(DecodeError::Malformed(
            "varlong longer than 10 bytes".into(),
        ))
    }

    /// Length of a nullable string/bytes field: `None` for null. Classic
    /// fields carry an i16 (strings) or i32 (bytes) length, compact ones a
    /// uvarint of length + 1. The length is checked against the bytes left.
    fn nullable_len(&mut self, compact: bool, wide: bool) -> Result<Option<usize>, DecodeError> {
        let len: i64 = if compact {
            i64::from(self.uvarint()?) - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(DecodeError::Invalid {
                what: "length",
                value: len,
            });
        }
        let len = len as usize;
        if len > self.remaining() {
            return Err(DecodeError::Truncated {
                needed: len,
                left: self.remaining(),
            });
        }
        Ok(Some(len))
    }

    pub fn nullable_string(&mut self, compact: bool) -> Result<Option<&'a str>, DecodeError> {
        match self.nullable_len(compact, false)? {
            None => Ok(None),
            Some(n) => std::str::from_utf8(self.take(n)?)
                .map(Some)
                .map_err(|_| DecodeError::Malformed("string is not UTF-8".into())),
        }
    }

    pub fn string(&mut self, compact: bool) -> Result<&'a str, DecodeError> {
        self.nullable_string(compact)?.ok_or(DecodeError::Malformed(
            "null where a string is required".into(),
        ))
    }

    /// Nullable bytes: returns the byte range within the underlying slice,
    /// so callers can slice their owned buffer instead of copying.
    pub fn nullable_bytes_range(
        &mut self,
        compact: bool,
    ) -> Result<Option<std::ops::Range<usize>>, DecodeError> {
        match self.nullable_len(compact, true)? {
            None => Ok(None),
            Some(n) => {
                let start = self.pos;
                self.take(n)?;
                Ok(Some(start..start + n))
            }
        }
    }

    /// Array element count (`None` for a null array). The count is checked
    /// against the bytes left assuming `min_elem_bytes` per element, so no
    /// caller sizes anything from an absurd count.
    pub fn array_len(
        &mut self,
        compact: bool,
        min_elem_bytes: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let n: i64 = if compact {
            i64::from(self.uvarint()?) - 1
        } else {
            i64::from(self.i32()?)
        };
        if n == -1 {
            return Ok(None);
        }
        if n < 0 {
            return Err(DecodeError::Invalid {
                what: "array length",
                value: n,
            });
        }
        let n = n as usize;
        if n.saturating_mul(min_elem_bytes.max(1)) > self.remaining() {
            return Err(DecodeError::Truncated {
                needed: n.saturating_mul(min_elem_bytes.max(1)),
                left: self.remaining(),
            });
        }
        Ok(Some(n))
    }

    /// Skips a tagged-field section (flexible versions): fields we do not
    /// know are ignored, as Kafka does.
    pub fn skip_tagged_fields(&mut self) -> Result<(), DecodeError> {
        let count = self.uvarint()?;
        if count as usize > self.remaining() {
            return Err(DecodeError::Truncated {
                needed: count as usize,
                left: self.remaining(),
            });
        }
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

/// Unsigned varint (compact lengths, tagged fields).
pub fn put_uvarint(buf: &mut BytesMut, v: u32) {
    put_leb128(buf, u64::from(v));
}

pub fn uvarint_len(v: u32) -> usize {
    leb128_len(u64::from(v))
}

/// Zigzag varlong (a v2 record's fields).
pub fn put_varlong(buf: &mut BytesMut, v: i64) {
    put_leb128(buf, zigzag(v));
}

/// Bytes [`put_varlong`] writes for `v`.
pub fn varlong_len(v: i64) -> usize {
    leb128_len(zigzag(v))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn put_leb128(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn leb128_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// A string (never null) in classic or compact form.
pub fn put_string(buf: &mut BytesMut, s: &str, compact: bool) {
    if compact {
        put_uvarint(buf, s.len() as u32 + 1);
    } else {
        buf.put_i16(s.len() as i16);
    }
    buf.put_slice(s.as_bytes());
}

/// An array length (never null) in classic or compact form.
pub fn put_array_len(buf: &mut BytesMut, n: usize, compact: bool) {
    if compact {
        put_uvarint(buf, n as u32 + 1);
    } else {
        buf.put_i32(n as i32);
    }
}

/// A null array in classic or compact form.
pub fn put_null_array(buf: &mut BytesMut, compact: bool) {
    if compact {
        put_uvarint(buf, 0);
    } else {
        buf.put_i32(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(u: u32, v: i64) {
            let mut b = BytesMut::new();
            put_uvarint(&mut b, u);
            prop_assert_eq!(b.len(), uvarint_len(u));
            put_varlong(&mut b, v);
            prop_assert_eq!(b.len(), uvarint_len(u) + varlong_len(v));
            let mut r = Reader::new(&b);
            prop_assert_eq!(r.uvarint().unwrap(), u);
            prop_assert_eq!(r.varlong().unwrap(), v);
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn reader_never_panics(data: Vec<u8>, compact: bool) {
            let mut r = Reader::new(&data);
            let _ = r.nullable_string(compact);
            let _ = r.nullable_bytes_range(compact);
            let _ = r.array_len(compact, 1);
            let _ = r.skip_tagged_fields();
            let _ = r.i64();
        }
    }

    #[test]
    fn absurd_lengths_are_rejected_before_use() {
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff, 1, 2]);
        assert!(matches!(
            r.nullable_bytes_range(false),
            Err(DecodeError::Truncated { .. })
        ));
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff, 1, 2]);
        assert!(matches!(
            r.array_len(false, 4),
            Err(DecodeError::Truncated { .. })
        ));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xfe]);
        assert!(matches!(
            r.array_len(false, 1),
            Err(DecodeError::Invalid { .. })
        ));
    }

    #[test]
    fn varlong_edges_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::MAX,
            i64::MIN,
            1 << 40,
        ] {
            let mut buf = BytesMut::new();
            put_varlong(&mut buf, v);
            assert_eq!(buf.len(), varlong_len(v));
            let mut r = Reader::new(&buf);
            assert_eq!(r.varlong().unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn overlong_varint_is_malformed() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(r.uvarint().is_err());
    }
}
