//! The simulator's physical model, pure: how long prefill and each decode step take, how many
//! tokens to emit, which fault to inject. The server only follows these numbers.

use std::time::Duration;

use rand::Rng;

use super::{Fault, SimConfig};

/// Prompt tokens estimated from text: one token per 4 characters, at least 1. Real tokenizers
/// average 3.5 to 4.5 characters per English token; a fixed rule keeps runs explainable.
pub fn estimate_prompt_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

/// Time to process the prompt.
pub fn prefill_time(cfg: &SimConfig, prompt_tokens: u64) -> Duration {
    cfg.prefill_per_token.get() * u32::try_from(prompt_tokens).unwrap_or(u32::MAX)
}

/// Time for one decode step when `active` requests decode at once. Each stream runs at its own
/// speed (`decode_per_token`) until the shared bandwidth cap (`max_decode_tokens_per_second`)
/// binds; then the slots share it, as a memory-bound GPU does.
pub fn decode_step(cfg: &SimConfig, active: usize) -> Duration {
    let own = cfg.decode_per_token.get();
    match cfg.max_decode_tokens_per_second {
        Some(cap) if cap > 0.0 => own.max(Duration::from_secs_f64(active.max(1) as f64 / cap)),
        _ => own,
    }
}

/// Tokens to emit: `num_predict` when the request sets a positive one (done_reason `length`),
/// else a seeded draw from the configured range (done_reason `stop`).
pub fn output_tokens(
    cfg: &SimConfig,
    num_predict: Option<i64>,
    rng: &mut impl Rng,
) -> (u64, &'static str) {
    match num_predict {
        Some(n) if n > 0 => (n as u64, "length"),
        _ => {
            let (lo, hi) = (cfg.output_tokens.min.max(1), cfg.output_tokens.max.max(1));
            (rng.random_range(lo.min(hi)..=hi.max(lo)) as u64, "stop")
        }
    }
}

/// The fault to inject for a uniform draw `u` in [0, 1), by cumulative rate in a fixed order.
pub fn pick_fault(cfg: &SimConfig, u: f64) -> Option<Fault> {
    let mut edge = 0.0;
    for fault in Fault::ALL {
        edge += cfg.faults.rate(fault);
        if u < edge {
            return Some(fault);
        }
    }
    None
}

/// Service time of one request on an idle slot: prefill, then `tokens - 1` decode steps (the
/// prefill yields the first token). With one slot and `c` closed-loop users, each request waits
/// for the `c - 1` ahead of it, so TTFT ≈ (c − 1) × service + prefill.
pub fn service_time(cfg: &SimConfig, prompt_tokens: u64, tokens: u64) -> Duration {
    prefill_time(cfg, prompt_tokens)
        + decode_step(cfg, 1) * u32::try_from(tokens.saturating_sub(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::HumanDuration;
    use rand::SeedableRng;

    fn cfg() -> SimConfig {
        SimConfig {
            decode_per_token: HumanDuration(Duration::from_millis(10)),
            prefill_per_token: HumanDuration(Duration::from_millis(1)),
            ..SimConfig::default()
        }
    }

    #[test]
    fn prompt_tokens_round_up_to_at_least_one() {
        assert_eq!(estimate_prompt_tokens(0), 1);
        assert_eq!(estimate_prompt_tokens(4), 1);
        assert_eq!(estimate_prompt_tokens(5), 2);
    }

    #[test]
    fn bandwidth_cap_binds_only_past_its_share() {
        let mut c = cfg();
        c.max_decode_tokens_per_second = Some(200.0); // 100/s per stream alone
        assert_eq!(decode_step(&c, 1), Duration::from_millis(10));
        assert_eq!(decode_step(&c, 2), Duration::from_millis(10));
        assert_eq!(decode_step(&c, 4), Duration::from_millis(20));
    }

    #[test]
    fn num_predict_wins_over_the_distribution() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        assert_eq!(output_tokens(&cfg(), Some(7), &mut rng), (7, "length"));
        let (n, reason) = output_tokens(&cfg(), None, &mut rng);
        assert!((cfg().output_tokens.min as u64..=cfg().output_tokens.max as u64).contains(&n));
        assert_eq!(reason, "stop");
    }

    #[test]
    fn faults_follow_cumulative_rates() {
        let mut c = cfg();
        c.faults.http_500 = 0.1;
        c.faults.disconnect = 0.2;
        assert_eq!(pick_fault(&c, 0.05), Some(Fault::Http500));
        assert_eq!(pick_fault(&c, 0.25), Some(Fault::Disconnect));
        assert_eq!(pick_fault(&c, 0.35), None);
    }

    #[test]
    fn service_time_is_prefill_plus_remaining_decode_steps() {
        assert_eq!(service_time(&cfg(), 8, 5), Duration::from_millis(8 + 40));
    }
}
