//! Startup and shutdown: the catalog, the listening socket, one pinned
//! glommio executor per shard joined by a channel mesh, signal handling.

use std::collections::BTreeMap;
use std::os::fd::IntoRawFd;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{info, warn};

use crate::catalog::Catalog;
use crate::config::{split_host_port, Config};
use crate::constants::{
    IO_MEMORY_BYTES_PER_SHARD_MAX, IO_MEMORY_BYTES_PER_SHARD_MIN, IO_MEMORY_BYTES_TOTAL,
    OFFSETS_SEGMENTS_PER_REWRITE, RING_DEPTH, SHARD_CHANNEL_CAPACITY,
};
use crate::group_coordinator::{self, OFFSETS_TOPIC};
use crate::metrics;
use crate::shard::{ConnCounts, Shard, ShardMsg};
use crate::transport::listener::{accept_loop, Listener};
use crate::transport::sendfile::SendfilePool;

/// CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed cpu_set_t we own.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) }
            == 0;
    let cpus: Vec<usize> = if ok {
        // SAFETY: CPU_ISSET reads the set filled above.
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() {
        vec![0]
    } else {
        cpus
    }
}

/// The offsets topic keeps its records until the coordinator rewrites
/// them; small segments let that rewrite delete most of what it replaced.
fn offsets_topic_configs(config: &Config) -> BTreeMap<String, String> {
    let segment = config.groups.offsets_rewrite_bytes / OFFSETS_SEGMENTS_PER_REWRITE;
    [
        ("segment.bytes", segment.to_string()),
        ("retention.ms", "-1".to_string()),
        ("retention.bytes", "-1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// File descriptors kept for logs, segments, the listeners and helper
/// threads beyond one per connection, when checking the open-file limit.
const FDS_RESERVED: u64 = 1_024;

/// Raises the soft open-file limit to the hard one (every connection and
/// segment file is a descriptor) and says what it is.
fn raise_nofile_limit(connections_max: u32) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
        return;
    }
    let old = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the rlimit we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            warn!(error = %std::io::Error::last_os_error(), soft = old, hard = lim.rlim_max, "cannot raise the open-file limit");
            lim.rlim_cur = old;
        }
    }
    info!(
        from = old,
        to = lim.rlim_cur,
        hard = lim.rlim_max,
        "open-file limit"
    );
    if lim.rlim_cur < u64::from(connections_max) + FDS_RESERVED {
        warn!(
            limit = lim.rlim_cur,
            max_connections = connections_max,
            "open-file limit below --max-connections plus {FDS_RESERVED}: accepts may fail with EMFILE first"
        );
    }
}

/// Runs the broker until SIGTERM or SIGINT; returns once every log is
/// closed.
pub fn run(config: Config) -> Result<()> {
    raise_nofile_limit(config.connections_max);
    let config = Arc::new(config);
    let n = config.shards;
    let catalog = Catalog::open(&config.data_dir, n as u32)
        .with_context(|| format!("open topic metadata in {}", config.data_dir.display()))?;
    let offsets_partitions = config.offsets_topic_partitions.unwrap_or(n as u32);
    futures_lite::future::block_on(catalog.ensure_internal_topic(
        OFFSETS_TOPIC.to_string(),
        offsets_partitions,
        offsets_topic_configs(&config),
    ))
    .with_context(|| format!("create the internal topic {OFFSETS_TOPIC}"))?;
    let snap = catalog.snapshot();
    if let Some(t) = snap
        .topics
        .values()
        .find(|t| t.owners.iter().any(|&o| o as usize >= n))
    {
        bail!(
            "topic {} has partitions on shard {} but only {n} shards were asked for; start with --shards {} or more",
            t.name,
            t.owners.iter().max().copied().unwrap_or(0),
            t.owners.iter().max().copied().unwrap_or(0) + 1
        );
    }
    drop(snap);

    // Bound here, before the shards start, so the port is known and
    // clients connecting early wait in the backlog.
    let std_listener = std::net::TcpListener::bind(&config.listen)
        .with_context(|| format!("listen on {}", config.listen))?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    let advertised = match &config.advertise {
        Some(a) => split_host_port(a)?,
        None if local.ip().is_unspecified() => ("127.0.0.1".to_string(), local.port()),
        None => (local.ip().to_string(), local.port()),
    };
    let listener_fd = std_listener.into_raw_fd();
    let (scrape_txs, mut scrape_rxs): (Vec<_>, Vec<_>) =
        (0..n).map(|_| metrics::scrape::scrape_channel()).unzip();
    if let Some(addr) = &config.metrics_listen {
        let derived: Vec<metrics::scrape::Derived> = vec![
            crate::shard::metrics::cache_hit_ratio,
            group_coordinator::group_lag,
        ];
        let bound = metrics::http::start(addr, scrape_txs, derived)?;
        info!("serving metrics on {bound} (GET /metrics)");
    } else {
        drop(scrape_txs);
    }

    let sendfile = SendfilePool::start()?;
    let conns = Arc::new(ConnCounts((0..n).map(|_| AtomicUsize::new(0)).collect()));
    let mesh = MeshBuilder::<ShardMsg, _>::full(n, SHARD_CHANNEL_CAPACITY);
    let io_memory = (IO_MEMORY_BYTES_TOTAL / n)
        .clamp(IO_MEMORY_BYTES_PER_SHARD_MIN, IO_MEMORY_BYTES_PER_SHARD_MAX);
    let cpus = allowed_cpus();
    let (ready_tx, ready_rx) = flume::bounded::<Result<(), String>>(n);
    let mut stops = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    // Executors are created in shard order, so glommio's executor ids (which
    // order the mesh's peers) follow shard ids; checked after the join.
    for id in 0..n {
        let (stop_tx, stop_rx) = flume::bounded::<()>(1);
        stops.push(stop_tx);
        let cpu = cpus[id % cpus.len()];
        let scrape_rx = scrape_rxs.remove(0);
        let (config, catalog, advertised, sendfile, conns, mesh, ready) = (
            config.clone(),
            catalog.clone(),
            advertised.clone(),
            sendfile.clone(),
            conns.clone(),
            mesh.clone(),
            ready_tx.clone(),
        );
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("shard-{id}"))
            .io_memory(io_memory)
            .ring_depth(RING_DEPTH)
            .spawn(move || async move {
                let (senders, receivers) = match mesh.join().await {
                    Ok(sr) => sr,
                    Err(_) => {
                        let _ = ready.send(Err("joining the shard mesh failed".into()));
                        return;
                    }
                };
                if senders.peer_id() != id {
                    let _ =
                        ready.send(Err(format!("shard {id} got mesh id {}", senders.peer_id())));
                    return;
                }
                let shard = Shard::new(
                    id as u32,
                    config.clone(),
                    catalog,
                    advertised,
                    sendfile,
                    conns,
                    senders,
                );
                shard.serve_peers(receivers);
                crate::shard::metrics::serve_scrapes(&shard, scrape_rx);
                shard.open_all().await;
                shard.groups.load(&shard).await;
                let group_timers =
                    glommio::spawn_local(shard.groups.clone().run_timers(shard.clone()));
                if id == 0 {
                    // SAFETY: the descriptor came from a listening std
                    // TcpListener whose ownership was released above.
                    let listener = Listener::from_raw_fd(listener_fd);
                    glommio::spawn_local(accept_loop(shard.clone(), listener)).detach();
                }
                let retention = {
                    let shard = shard.clone();
                    let every = Duration::from_millis(config.retention_check_interval_ms);
                    glommio::spawn_local(async move {
                        loop {
                            glommio::timer::sleep(every).await;
                            shard.enforce_retention().await;
                        }
                    })
                };
                let _ = ready.send(Ok(()));
                let _ = stop_rx.recv_async().await;
                drop(retention);
                drop(group_timers);
                shard.close_all().await;
                info!(shard = id, "shard stopped");
            })
            .map_err(|e| anyhow::anyhow!("start shard {id} on cpu {cpu}: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..n {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("shard failed to start: {e}"),
            Err(_) => bail!("a shard died while starting"),
        }
    }
    info!(
        shards = n,
        flush = %config.log.flush,
        max_connections = config.connections_max,
        max_connections_per_ip = config.connections_per_ip_max,
        max_inflight_requests = config.inflight_requests_per_connection,
        max_request_bytes = config.request_bytes_max,
        cache_mb_per_shard = config.cache_bytes_per_shard >> 20,
        write_behind_mb_per_shard = config.write_behind_bytes_per_shard >> 20,
        data_dir = %config.data_dir.display(),
        advertised = %format!("{}:{}", advertised.0, advertised.1),
        "listening on {local}"
    );

    let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT])?;
    if let Some(sig) = signals.forever().next() {
        info!(signal = sig, "shutting down");
    }
    for s in &stops {
        let _ = s.send(());
    }
    for h in handles {
        if h.join().is_err() {
            warn!("a shard ended abnormally");
        }
    }
    info!("stopped cleanly");
    Ok(())
}
