//! A circuit breaker: after `threshold` failures in a row it opens and fails
//! calls at once for `cool_down`; then it lets one probe through (half-open)
//! and closes on its success or opens again on its failure.
//!
//! Written here rather than taken from a crate: tower-resilience wants the
//! HTTP client wrapped as a tower stack, and `failsafe` is unmaintained; this
//! is one small state machine that also reports its state for `/health/ready`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cool_down: Duration,
    /// How long a probe may take before it is presumed lost (its caller
    /// gave up without reporting) and another may go.
    probe_deadline: Duration,
    state: Mutex<State>,
    /// The peer it guards, for `app_peer_breaker_transitions_total`.
    peer: &'static str,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; another may go if it has not answered by `stale`.
    HalfOpen {
        stale: Instant,
    },
}

impl Breaker {
    pub fn new(threshold: u32, cool_down: Duration, probe_deadline: Duration) -> Self {
        Self {
            threshold,
            cool_down,
            probe_deadline,
            state: Mutex::new(State::Closed { failures: 0 }),
            peer: "",
        }
    }

    /// Counts its transitions as the breaker of calls to `peer`.
    pub fn for_peer(mut self, peer: &'static str) -> Self {
        self.peer = peer;
        self
    }

    /// Moves to `next`, counting the move when the kind of state changes.
    fn enter(&self, state: &mut State, next: State) {
        let (from, to) = (state.name(), next.name());
        *state = next;
        if from != to {
            metrics::counter!(
                "app_peer_breaker_transitions_total",
                "peer" => self.peer,
                "to" => to,
            )
            .increment(1);
        }
    }

    /// Whether a call may go now. When it goes, report how it went.
    pub fn allow(&self) -> bool {
        let mut state = self.state.lock().expect("breaker lock");
        let now = Instant::now();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } | State::HalfOpen { stale: until } if now >= until => {
                let next = State::HalfOpen {
                    stale: now + self.probe_deadline,
                };
                self.enter(&mut state, next);
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    pub fn succeeded(&self) {
        let mut state = self.state.lock().expect("breaker lock");
        self.enter(&mut state, State::Closed { failures: 0 });
    }

    pub fn failed(&self) {
        let mut state = self.state.lock().expect("breaker lock");
        let failures = match *state {
            State::Closed { failures } => failures + 1,
            State::HalfOpen { .. } => self.threshold,
            State::Open { .. } => return,
        };
        let next = if failures >= self.threshold {
            State::Open {
                until: Instant::now() + self.cool_down,
            }
        } else {
            State::Closed { failures }
        };
        self.enter(&mut state, next);
    }

    /// `closed`, `open` or `half-open`.
    pub fn state(&self) -> &'static str {
        self.state.lock().expect("breaker lock").name()
    }
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half-open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_after_a_good_probe() {
        let breaker = Breaker::new(3, Duration::from_millis(50), Duration::from_secs(60));
        for _ in 0..2 {
            assert!(breaker.allow());
            breaker.failed();
        }
        assert_eq!(breaker.state(), "closed");
        breaker.failed();
        assert_eq!(breaker.state(), "open");
        assert!(!breaker.allow());

        std::thread::sleep(Duration::from_millis(60));
        assert!(breaker.allow(), "one probe after the cool-down");
        assert_eq!(breaker.state(), "half-open");
        assert!(!breaker.allow(), "only one probe at a time");
        breaker.succeeded();
        assert_eq!(breaker.state(), "closed");
        assert!(breaker.allow());
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let breaker = Breaker::new(1, Duration::from_millis(20), Duration::from_secs(60));
        breaker.failed();
        std::thread::sleep(Duration::from_millis(30));
        assert!(breaker.allow());
        breaker.failed();
        assert_eq!(breaker.state(), "open");
        assert!(!breaker.allow());
    }

    #[test]
    fn a_lost_probe_gives_way_to_another_after_its_deadline() {
        let breaker = Breaker::new(1, Duration::from_millis(10), Duration::from_millis(500));
        breaker.failed();
        std::thread::sleep(Duration::from_millis(15));
        assert!(breaker.allow(), "the probe");
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !breaker.allow(),
            "the probe is still out, though the cool-down is over"
        );
        std::thread::sleep(Duration::from_millis(500));
        assert!(breaker.allow(), "the probe was lost");
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::new(2, Duration::from_secs(60), Duration::from_secs(60));
        breaker.failed();
        breaker.succeeded();
        breaker.failed();
        assert_eq!(breaker.state(), "closed");
    }
}
