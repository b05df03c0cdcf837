//! The seed's threshold scaler (`scaler.py` of the threshold-based seed): every 10 s, the mean
//! response time over the last 30 s; above 0.6 s one replica more, below 0.2 s one fewer, within
//! the bounds. No cooldown: the seed lists one as future work.

use super::{Bounds, Context, Policy};

#[derive(Debug, Clone)]
pub struct Threshold {
    /// Scale up above this mean latency, seconds.
    pub up: f64,
    /// Scale down below this mean latency, seconds.
    pub down: f64,
    /// Seconds of windows the mean covers.
    pub span: f64,
    /// Seconds between checks.
    pub period: f64,
    pub bounds: Bounds,
}

impl Threshold {
    /// The seed's settings: 0.6 s, 0.2 s, 30 s, every 10 s.
    pub fn seed(bounds: Bounds) -> Self {
        Self {
            up: 0.6,
            down: 0.2,
            span: 30.0,
            period: 10.0,
            bounds,
        }
    }
}

impl Policy for Threshold {
    fn name(&self) -> String {
        "threshold (seed)".into()
    }

    fn period(&self) -> f64 {
        self.period
    }

    fn decide(&mut self, context: &Context<'_>) -> u32 {
        let current = context.existing;
        let recent = context
            .windows
            .iter()
            .rev()
            .take_while(|w| context.now - w.end < self.span);
        let (mut sum, mut count) = (0.0, 0.0);
        for w in recent {
            if let Some(mean) = w.mean_latency {
                sum += mean * w.served_rps;
                count += w.served_rps;
            }
        }
        if count <= 0.0 {
            return current;
        }
        let mean = sum / count;
        if mean > self.up {
            self.bounds.clamp(current + 1)
        } else if mean < self.down {
            self.bounds.clamp(current.saturating_sub(1))
        } else {
            current
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Window;

    fn window(end: f64, mean: f64) -> Window {
        Window {
            end,
            offered_rps: 10.0,
            served_rps: 10.0,
            error_rps: 0.0,
            latency: None,
            mean_latency: Some(mean),
            utilization: 0.5,
            ready: 2,
            existing: 2,
        }
    }

    #[test]
    fn one_step_on_the_thirty_second_mean() {
        let mut t = Threshold::seed(Bounds { min: 1, max: 3 });
        let mut decide = |windows: &[Window], existing| {
            t.decide(&Context {
                now: 40.0,
                windows,
                features: None,
                anomalies: &[],
                existing,
            })
        };
        // The window ending at 10 s is older than 30 s and not counted.
        let slow = [
            window(10.0, 0.1),
            window(20.0, 0.9),
            window(30.0, 0.7),
            window(40.0, 0.5),
        ];
        assert_eq!(decide(&slow, 2), 3);
        assert_eq!(decide(&slow, 3), 3, "max replicas");
        let fast = [window(30.0, 0.05), window(40.0, 0.1)];
        assert_eq!(decide(&fast, 2), 1);
        assert_eq!(decide(&fast, 1), 1, "min replicas");
        let fine = [window(40.0, 0.3)];
        assert_eq!(decide(&fine, 2), 2);
    }
}
