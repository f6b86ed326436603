//! The records of an uncompressed batch body, read in place: no record is
//! materialised, keys and values stay slices of the body.

use crate::wire::Reader;
use crate::DecodeError;

/// One record as written: deltas relative to the batch header, key and
/// value `None` when null. Headers are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// The first `count` records of `body` (the bytes after the batch header,
/// uncompressed). After an error the iteration ends.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    r: Reader<'a>,
    left: i32,
}

impl<'a> Records<'a> {
    pub fn new(body: &'a [u8], count: i32) -> Records<'a> {
        Records {
            r: Reader::new(body),
            left: count,
        }
    }

    fn read(&mut self) -> Result<RawRecord<'a>, DecodeError> {
        let len = self.r.varlong()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Invalid {
            what: "record length",
            value: len,
        })?;
        let mut rec = Reader::new(self.r.take(len)?);
        Ok(RawRecord {
            attributes: rec.i8()?,
            timestamp_delta: rec.varlong()?,
            offset_delta: rec.varlong()?,
            key: nullable(&mut rec)?,
            value: nullable(&mut rec)?,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RawRecord<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left <= 0 {
            return None;
        }
        self.left -= 1;
        let rec = self.read();
        if rec.is_err() {
            self.left = 0;
        }
        Some(rec)
    }
}

fn nullable<'a>(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>, DecodeError> {
    let len = r.varlong()?;
    if len == -1 {
        return Ok(None);
    }
    let n = usize::try_from(len).map_err(|_| DecodeError::Invalid {
        what: "record field length",
        value: len,
    })?;
    r.take(n).map(Some)
}
