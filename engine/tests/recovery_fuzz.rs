//! The recovery fuzz property (see `common/recovery_property.rs`) over
//! seeded random damage, so CI covers it without nightly or libFuzzer.
//! Replay one case with `SPINDLE_FUZZ_SEED=N`; run more with
//! `SPINDLE_FUZZ_CASES=N`.

mod common;
#[path = "common/recovery_property.rs"]
mod recovery_property;

use common::run;
use spindle_engine::storage::sim::SimRng;

/// Random inputs in the fuzz target's format: mostly a few small damages
/// (most inputs should get past recovery), sometimes many.
fn input(seed: u64) -> Vec<u8> {
    let mut rng = SimRng::new(seed);
    let mut v = vec![rng.below(256) as u8, rng.below(256) as u8];
    let damages = if rng.below(4) == 0 {
        rng.below(16)
    } else {
        1 + rng.below(2)
    };
    for _ in 0..damages {
        let len = rng.below(8) as u8;
        v.push(rng.below(256) as u8);
        v.push(rng.below(6) as u8);
        v.extend_from_slice(&(rng.below(9000) as u16).to_be_bytes());
        v.push(len);
        for _ in 0..len {
            v.push(rng.below(256) as u8);
        }
    }
    v
}

#[test]
fn recovery_of_damaged_files_refuses_or_reads_consistently() {
    let one = std::env::var("SPINDLE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let cases = std::env::var("SPINDLE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(10_000);
    run(async move {
        let images = recovery_property::base_images().await;
        let seeds = one.map_or(0..cases, |s| s..s + 1);
        let (mut opened, mut refused) = (0u64, 0u64);
        for seed in seeds {
            let inp = input(seed);
            let _guard = SeedGuard(seed, &inp);
            match recovery_property::check(&inp, &images).await {
                recovery_property::Outcome::Opened => opened += 1,
                recovery_property::Outcome::Refused => refused += 1,
            }
        }
        println!("{opened} inputs opened, {refused} refused");
        // Most damage is survivable: a property that only ever saw refusals
        // would test nothing.
        assert!(
            one.is_some() || opened > refused,
            "{opened} opened, {refused} refused"
        );
    });
}

/// Names the failing case when the property panics.
struct SeedGuard<'a>(u64, &'a [u8]);

impl Drop for SeedGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "recovery property failed for seed {} (input {:02x?}); replay with SPINDLE_FUZZ_SEED={}",
                self.0, self.1, self.0
            );
        }
    }
}
