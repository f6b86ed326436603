//! The work a partition's owner shard runs on its log.

use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use spindle_engine::{AppendInfo, ReadResult};
use tracing::warn;

use super::Shard;
use crate::errors::{self, ErrorCode};

/// Work for one partition, run on its owner shard.
pub enum PartitionOp {
    Append(BytesMut),
    Read {
        offset: i64,
        max_bytes: u32,
    },
    /// Resolve when the high watermark is past `seen_hw` (at once if it
    /// already is) or after `timeout`.
    Wait {
        timeout: Duration,
        seen_hw: i64,
    },
    /// Log start and high watermark, and the first offset at or after
    /// `timestamp` when one is given.
    Offsets {
        timestamp: Option<i64>,
    },
    /// Open the log (creating its directory) if it is not open.
    Open,
}

pub struct Offsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub for_timestamp: Option<(i64, i64)>,
}

pub enum OpReply {
    Appended(Result<AppendInfo, (ErrorCode, String)>),
    Read(Result<ReadResult, (ErrorCode, i64, i64)>),
    Waited,
    Offsets(Result<Offsets, ErrorCode>),
    Opened(Result<(), ErrorCode>),
    /// The partition is not (or no longer) there, or the owner is gone.
    Error(ErrorCode),
}

impl Shard {
    /// Runs `op` on a partition owned here.
    pub async fn exec(self: &Rc<Self>, topic: &str, partition: i32, op: PartitionOp) -> OpReply {
        let log = match self.log(topic, partition).await {
            Ok(l) => l,
            Err(code) => {
                return match op {
                    PartitionOp::Open => OpReply::Opened(Err(code)),
                    _ => OpReply::Error(code),
                }
            }
        };
        match op {
            PartitionOp::Append(batches) => {
                let r = log.append(batches).await;
                if log.is_poisoned() {
                    super::repair::schedule(self, topic, partition, &log);
                }
                OpReply::Appended(r.map_err(|e| (errors::append_error_code(&e), e.to_string())))
            }
            PartitionOp::Read { offset, max_bytes } => {
                OpReply::Read(log.read(offset, max_bytes).await.map_err(|e| {
                    let code = errors::read_error_code(&e);
                    if code != errors::OFFSET_OUT_OF_RANGE {
                        warn!(shard = self.id, topic, partition, error = %e, "read failed");
                    }
                    (code, log.log_start_offset(), log.high_watermark())
                }))
            }
            PartitionOp::Wait { timeout, seen_hw } => {
                if log.high_watermark() <= seen_hw {
                    futures_lite::future::or(log.wait_for_data(), async {
                        glommio::timer::sleep(timeout).await;
                    })
                    .await;
                }
                OpReply::Waited
            }
            PartitionOp::Offsets { timestamp } => {
                let for_timestamp = match timestamp {
                    None => None,
                    Some(ts) => match log.offset_for_timestamp(ts).await {
                        Ok(v) => v,
                        Err(e) => {
                            warn!(shard = self.id, topic, partition, error = %e, "offset for timestamp failed");
                            return OpReply::Offsets(Err(errors::read_error_code(&e)));
                        }
                    },
                };
                OpReply::Offsets(Ok(Offsets {
                    log_start_offset: log.log_start_offset(),
                    high_watermark: log.high_watermark(),
                    for_timestamp,
                }))
            }
            PartitionOp::Open => OpReply::Opened(Ok(())),
        }
    }
}
