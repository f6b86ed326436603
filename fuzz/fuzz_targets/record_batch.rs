//! The record-batch header parser and validator the broker runs on every
//! produced batch, on arbitrary bytes: never a panic, and whatever passes
//! is self-consistent (lengths tile the buffer, CRC matches).
#![no_main]

use libfuzzer_sys::fuzz_target;
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
});
