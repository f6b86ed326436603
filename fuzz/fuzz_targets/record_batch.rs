//! The record-batch format on arbitrary bytes: the header parser and
//! validator the broker runs on every produced batch (the engine's
//! `validate_batches` over codec's `BatchHeader`), and codec's walk over
//! batches and records that the broker's internal topics and loadgen use.
//! Never a panic, and whatever passes is self-consistent (lengths tile the
//! buffer, CRC matches).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spindle_codec::batch::{Batches, Records, BATCH_HEADER_LEN};
use spindle_codec::records::for_each_record;
use spindle_engine::batch::validate_batches;
use spindle_engine::BatchHeader;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = BatchHeader::parse(data) {
        let len = h.total_len();
        if len <= data.len() as u64 {
            let _ = h.validate(&data[..len as usize]);
        }
        let _ = h.last_sequence();
    }
    if let Ok(batches) = validate_batches(data, 1 << 20) {
        let mut pos = 0usize;
        for (start, h) in &batches {
            assert_eq!(*start, pos, "batches tile the buffer");
            assert!(h.records_count > 0);
            pos += h.total_len() as usize;
        }
        assert_eq!(pos, data.len());
    }
    let mut walk = Batches::new(data);
    let mut pos = 0usize;
    for batch in walk.by_ref() {
        let Ok((h, bytes)) = batch else { break };
        assert_eq!(bytes.as_ptr(), data[pos..].as_ptr(), "walked batches tile the buffer");
        assert_eq!(h.total_len(), bytes.len() as u64);
        pos += bytes.len();
        if h.compression() == 0 {
            for r in Records::new(&bytes[BATCH_HEADER_LEN..], h.records_count) {
                if r.is_err() {
                    break;
                }
            }
        }
    }
    assert_eq!(walk.consumed(), pos);
    if let Ok(used) = for_each_record(data, |_| {}) {
        assert!(used <= data.len());
    }
});
