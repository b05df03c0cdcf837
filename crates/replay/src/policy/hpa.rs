//! The Kubernetes Horizontal Pod Autoscaler's algorithm (`autoscaling/v2`, default behavior),
//! on a utilization metric:
//!
//! - every sync period (15 s), `usage = mean utilization of the ready pods / target`;
//! - within the tolerance (0.1) of 1: no change; else `desired = ceil(usage * ready)`;
//! - scaling up with pods not ready yet: those count as using nothing, and the ratio is
//!   recomputed over all pods (the controller's guard against scaling on start-up noise);
//! - scale-up limit: the larger of +100 % and +4 pods per period;
//! - scale-down stabilization (300 s): the highest recommendation within the window wins;
//! - min and max replicas.
//!
//! Utilization is what CPU utilization is for a CPU-bound service: busy slot time over the
//! available slot time of the ready replicas, read from the newest poll window. That is a
//! cleaner signal than a real CPU metric, so the baseline is, if anything, favoured.

use super::{Bounds, Context, Policy};
use std::collections::VecDeque;

/// The HPA controller for one workload.
#[derive(Debug, Clone)]
pub struct Hpa {
    /// Target utilization, 0 to 1.
    pub target: f64,
    /// Ratios within this of 1 change nothing.
    pub tolerance: f64,
    /// Seconds between syncs.
    pub sync_period: f64,
    /// Scale-down stabilization window, seconds.
    pub stabilization: f64,
    pub bounds: Bounds,
    /// Recommendations within the stabilization window: (time, count).
    recommendations: VecDeque<(f64, u32)>,
}

impl Hpa {
    /// HPA with the defaults of `kube-controller-manager` and `behavior`.
    pub fn new(target: f64, bounds: Bounds) -> Self {
        Self {
            target,
            tolerance: 0.1,
            sync_period: 15.0,
            stabilization: 300.0,
            bounds,
            recommendations: VecDeque::new(),
        }
    }

    /// The replica calculator: the count the metric asks for.
    fn calculate(&self, utilization: f64, ready: u32, current: u32) -> u32 {
        if ready == 0 {
            return current;
        }
        let ratio = utilization / self.target;
        let unready = current.saturating_sub(ready);
        if unready > 0 && ratio > 1.0 {
            // Pods not ready yet count as using nothing.
            let rebalanced = utilization * f64::from(ready) / (self.target * f64::from(current));
            if rebalanced <= 1.0 + self.tolerance {
                return current;
            }
            return (rebalanced * f64::from(current)).ceil() as u32;
        }
        if (ratio - 1.0).abs() <= self.tolerance {
            return current;
        }
        (ratio * f64::from(ready)).ceil() as u32
    }
}

impl Policy for Hpa {
    fn name(&self) -> String {
        if self.stabilization == 300.0 {
            format!("HPA {:.0}%", self.target * 100.0)
        } else {
            format!(
                "HPA {:.0}% ({:.0} s window)",
                self.target * 100.0,
                self.stabilization
            )
        }
    }

    fn period(&self) -> f64 {
        self.sync_period
    }

    fn decide(&mut self, context: &Context<'_>) -> u32 {
        let current = context.existing;
        let Some(window) = context.windows.last() else {
            return current;
        };
        let recommended =
            self.bounds
                .clamp(self.calculate(window.utilization, window.ready, current));
        let now = context.now;
        self.recommendations.push_back((now, recommended));
        while self
            .recommendations
            .front()
            .is_some_and(|(at, _)| now - at > self.stabilization)
        {
            self.recommendations.pop_front();
        }
        let stabilized = if recommended < current {
            self.recommendations
                .iter()
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(recommended)
                .min(current)
        } else {
            recommended
        };
        let up_limit = (current * 2).max(current + 4);
        self.bounds.clamp(stabilized.min(up_limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Window;

    fn window(utilization: f64, ready: u32) -> Window {
        Window {
            end: 0.0,
            offered_rps: 0.0,
            served_rps: 0.0,
            error_rps: 0.0,
            latency: None,
            mean_latency: None,
            utilization,
            ready,
            existing: ready,
        }
    }

    fn decide(hpa: &mut Hpa, now: f64, utilization: f64, ready: u32, existing: u32) -> u32 {
        let windows = [window(utilization, ready)];
        hpa.decide(&Context {
            now,
            windows: &windows,
            features: None,
            anomalies: &[],
            existing,
        })
    }

    const BOUNDS: Bounds = Bounds { min: 1, max: 10 };

    #[test]
    fn proportional_with_tolerance() {
        let mut hpa = Hpa::new(0.5, BOUNDS);
        assert_eq!(decide(&mut hpa, 0.0, 0.54, 4, 4), 4, "within 10 %");
        assert_eq!(decide(&mut hpa, 15.0, 0.9, 4, 4), 8, "ceil(4 * 0.9 / 0.5)");
        assert_eq!(decide(&mut hpa, 30.0, 1.0, 1, 1), 2);
        assert_eq!(decide(&mut hpa, 45.0, 1.0, 10, 10), 10, "max replicas");
    }

    #[test]
    fn unready_pods_count_as_idle_when_scaling_up() {
        let hpa = Hpa::new(0.5, BOUNDS);
        // 2 ready at 0.6 over 4 pods: 2 * 0.6 / (0.5 * 4) = 0.6 < 1.1: no change.
        assert_eq!(hpa.calculate(0.6, 2, 4), 4);
        assert_eq!(hpa.calculate(1.0, 2, 3), 4, "ceil(2 / 1.5 * 3)");
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let mut hpa = Hpa::new(0.5, BOUNDS);
        assert_eq!(decide(&mut hpa, 0.0, 0.5, 6, 6), 6);
        assert_eq!(decide(&mut hpa, 15.0, 0.1, 6, 6), 6);
        assert_eq!(decide(&mut hpa, 300.0, 0.1, 6, 6), 6);
        assert_eq!(decide(&mut hpa, 316.0, 0.1, 6, 6), 2, "ceil(6 * 0.1 / 0.5)");
    }

    #[test]
    fn scale_up_is_limited_per_period() {
        let mut hpa = Hpa::new(0.1, Bounds { min: 1, max: 100 });
        assert_eq!(decide(&mut hpa, 0.0, 1.0, 2, 2), 6, "+4 pods beats +100 %");
        assert_eq!(decide(&mut hpa, 15.0, 1.0, 10, 10), 20, "+100 % beats +4");
    }
}
