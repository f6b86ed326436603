//! Recovery on damaged files: a real log's segment, index, time index,
//! recovery point, producer snapshot and clean-shutdown marker are damaged
//! as the input says (on the simulated disk: no real I/O, deterministic)
//! and the log is opened. It must never panic or hang, and either refuse
//! with a RecoveryError or open a log whose reads are consistent. The
//! property is shared with the seeded test in the main workspace
//! (`engine/tests/recovery_fuzz.rs`).
#![no_main]

#[path = "../../engine/tests/common/recovery_property.rs"]
mod recovery_property;

use libfuzzer_sys::fuzz_target;
use std::cell::OnceCell;

thread_local! {
    // One executor for every input: building one per input would set up an
    // io_uring each time.
    static EXECUTOR: glommio::LocalExecutor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("executor");
    static IMAGES: OnceCell<Vec<recovery_property::Image>> = const { OnceCell::new() };
}

fuzz_target!(|data: &[u8]| {
    EXECUTOR.with(|ex| {
        ex.run(async {
            let images = IMAGES.with(|c| c.get().cloned());
            let images = match images {
                Some(i) => i,
                None => {
                    let i = recovery_property::base_images().await;
                    IMAGES.with(|c| c.get_or_init(|| i.clone()).clone())
                }
            };
            recovery_property::check(data, &images).await;
        })
    });
});
