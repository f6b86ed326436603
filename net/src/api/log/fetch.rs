//! Fetch (key 1), v4-17. Every partition is read on its owner shard; the
//! response is written as header bytes plus the engine's chunks (cached
//! batches as they are, cold file ranges with sendfile off the reactor).
//! Long poll: below min_bytes the request waits, up to max_wait_ms, for
//! any of its partitions' high watermark to move (woken by the engine's
//! appends, not by polling). Fetch sessions are not kept: every response
//! has session id 0, which clients (librdkafka, the Java client) take as
//! "no session" and keep sending full fetches.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use spindle_codec::fetch::{encode_fetch_response, FetchPartition, FetchResponse, FetchTopic};
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::FetchRequest;
use spindle_codec::DecodeError;

use crate::api::{Chunk, Ctx, Handler, Outcome, Response, Versions};
use crate::constants::FETCH_WAIT_MS_MAX;
use crate::errors::{self, ErrorCode};
use crate::shard::{OpReply, PartitionOp, Shard};

/// Serves Fetch; see the module doc.
pub struct Fetch;

impl Handler for Fetch {
    const KEY: ApiKey = ApiKey::Fetch;
    const VERSIONS: Versions = Versions::new(4, 17);
    type Request = FetchRequest;

    fn decode(body: BytesMut, version: i16) -> Result<FetchRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: FetchRequest) -> Outcome {
        if req.session_id != 0 {
            // We never hand out sessions, so the client cannot hold one.
            return respond(ctx, errors::FETCH_SESSION_ID_NOT_FOUND, Vec::new());
        }
        let snap = ctx.shard.snapshot();
        let topics: Vec<TopicReq> = req
            .topics
            .iter()
            .map(|t| {
                let name = if ctx.version >= 13 {
                    snap.topic_by_id(t.topic_id.as_bytes())
                        .map(|m| m.name.clone())
                } else {
                    Some(t.topic.0.to_string())
                };
                TopicReq {
                    name,
                    id: *t.topic_id.as_bytes(),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| Wanted {
                            partition: p.partition,
                            offset: p.fetch_offset,
                            max_bytes: u32::try_from(p.partition_max_bytes).unwrap_or(0),
                        })
                        .collect(),
                }
            })
            .collect();
        drop(snap);
        let max_bytes = u64::try_from(req.max_bytes).unwrap_or(0);
        let min_bytes = u64::try_from(req.min_bytes).unwrap_or(0);
        let wait = Duration::from_millis(
            u64::try_from(req.max_wait_ms)
                .unwrap_or(0)
                .min(FETCH_WAIT_MS_MAX),
        );
        let deadline = Instant::now() + wait;
        loop {
            let got = read_all(&ctx.shard, &topics, max_bytes).await;
            let total: u64 = got.iter().flatten().map(|g| g.bytes).sum();
            let any_error = got.iter().flatten().any(|g| g.error_code != errors::NONE);
            let left = deadline.saturating_duration_since(Instant::now());
            if total >= min_bytes.max(1) || any_error || left.is_zero() || topics.is_empty() {
                return respond(ctx, errors::NONE, assemble(&topics, got));
            }
            wait_any(&ctx.shard, &topics, &got, left).await;
        }
    }
}

struct Wanted {
    partition: i32,
    offset: i64,
    max_bytes: u32,
}

struct TopicReq {
    /// `None`: a topic id we do not know.
    name: Option<String>,
    id: [u8; 16],
    partitions: Vec<Wanted>,
}

/// One partition's read outcome.
struct Got {
    error_code: ErrorCode,
    high_watermark: i64,
    log_start_offset: i64,
    chunks: Vec<Chunk>,
    bytes: u64,
}

/// Reads every partition concurrently (each on its owner), then keeps
/// partitions in request order until the response limit: the first data
/// always goes out whole, later partitions past the limit go out empty.
async fn read_all(shard: &Rc<Shard>, topics: &[TopicReq], max_bytes: u64) -> Vec<Vec<Got>> {
    let mut tasks = Vec::new();
    for t in topics {
        let mut row = Vec::new();
        for w in &t.partitions {
            let task = t.name.clone().map(|name| {
                let shard = shard.clone();
                let (p, offset) = (w.partition, w.offset);
                let limit = u64::from(w.max_bytes).min(max_bytes.max(1)) as u32;
                glommio::spawn_local(async move {
                    shard
                        .run_op(
                            &name,
                            p,
                            PartitionOp::Read {
                                offset,
                                max_bytes: limit,
                            },
                        )
                        .await
                })
            });
            row.push(task);
        }
        tasks.push(row);
    }
    let mut total = 0u64;
    let mut out = Vec::with_capacity(tasks.len());
    for row in tasks {
        let mut got_row = Vec::with_capacity(row.len());
        for task in row {
            let Some(task) = task else {
                got_row.push(error(errors::UNKNOWN_TOPIC_ID));
                continue;
            };
            let mut g = match task.await {
                OpReply::Read(Ok(r)) => {
                    let chunks: Vec<Chunk> = r.chunks.into_iter().map(Chunk).collect();
                    let bytes = chunks
                        .iter()
                        .map(|c| u64::from(spindle_codec::fetch::RecordChunk::len_bytes(c)))
                        .sum();
                    Got {
                        error_code: errors::NONE,
                        high_watermark: r.high_watermark,
                        log_start_offset: r.log_start_offset,
                        chunks,
                        bytes,
                    }
                }
                OpReply::Read(Err((code, lso, hw))) => Got {
                    error_code: code,
                    high_watermark: hw,
                    log_start_offset: lso,
                    chunks: Vec::new(),
                    bytes: 0,
                },
                OpReply::Error(code) => error(code),
                _ => error(errors::UNKNOWN_SERVER_ERROR),
            };
            if total > 0 && total + g.bytes > max_bytes {
                g.chunks.clear();
                g.bytes = 0;
            }
            total += g.bytes;
            got_row.push(g);
        }
        out.push(got_row);
    }
    out
}

fn error(code: ErrorCode) -> Got {
    Got {
        error_code: code,
        high_watermark: -1,
        log_start_offset: -1,
        chunks: Vec::new(),
        bytes: 0,
    }
}

/// Waits until any partition's high watermark moves past what we saw, or
/// `left` passes.
async fn wait_any(shard: &Rc<Shard>, topics: &[TopicReq], got: &[Vec<Got>], left: Duration) {
    let (tx, rx) = glommio::channels::local_channel::new_bounded::<()>(1);
    let tx = Rc::new(tx);
    let mut waiters = Vec::new();
    for (t, row) in topics.iter().zip(got) {
        let Some(name) = &t.name else { continue };
        for (w, g) in t.partitions.iter().zip(row) {
            let (shard, tx, name, p) = (shard.clone(), tx.clone(), name.clone(), w.partition);
            let seen_hw = g.high_watermark;
            waiters.push(glommio::spawn_local(async move {
                shard
                    .run_op(
                        &name,
                        p,
                        PartitionOp::Wait {
                            timeout: left,
                            seen_hw,
                        },
                    )
                    .await;
                let _ = tx.try_send(());
            }));
        }
    }
    futures_lite::future::or(
        async {
            rx.recv().await;
        },
        glommio::timer::sleep(left),
    )
    .await;
    // Dropping the waiters cancels the local ones; remote ones end at
    // their own timeout.
    drop(waiters);
}

fn assemble(topics: &[TopicReq], got: Vec<Vec<Got>>) -> Vec<FetchTopic<Chunk>> {
    topics
        .iter()
        .zip(got)
        .map(|(t, row)| FetchTopic {
            name: t.name.clone().unwrap_or_default(),
            topic_id: t.id,
            partitions: t
                .partitions
                .iter()
                .zip(row)
                .map(|(w, g)| FetchPartition {
                    partition_index: w.partition,
                    error_code: g.error_code.code(),
                    high_watermark: g.high_watermark,
                    // No transactions: the last stable offset is the high
                    // watermark under either isolation level.
                    last_stable_offset: g.high_watermark,
                    log_start_offset: g.log_start_offset,
                    records: Some(g.chunks),
                })
                .collect(),
        })
        .collect()
}

fn respond(ctx: &Ctx, error_code: ErrorCode, topics: Vec<FetchTopic<Chunk>>) -> Outcome {
    let resp = FetchResponse {
        throttle_time_ms: 0,
        error_code: error_code.code(),
        session_id: 0,
        topics,
    };
    match encode_fetch_response(ctx.version, ctx.correlation_id, resp) {
        Ok(pieces) => Outcome::Respond(Response::Fetch(pieces)),
        Err(e) => Outcome::Close(e.to_string()),
    }
}
