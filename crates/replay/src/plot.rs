//! Plots of a trace's runs (PNG): the load, the replicas each policy ran, and the p95 latency
//! each window measured against the SLA.

use crate::simulation::WindowRecord;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::ops::Range;
use std::path::Path;

/// Where Debian's `fonts-dejavu-core` puts the font the plots are labelled with.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Makes `font` (a TrueType file) the plots' font; call once before plotting.
pub fn use_font(font: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(font).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the plots' font {}: {e}; install Debian's fonts-dejavu-core or pass --font",
            font.display()
        )
    })?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into()))
        .map_err(|_| anyhow::anyhow!("{} is not a TrueType font", font.display()))
}

/// One policy's windows, drawn in `color`.
pub struct Line<'a> {
    pub name: &'a str,
    pub windows: &'a [WindowRecord],
    pub color: RGBColor,
}

/// The colours of the policies drawn, in order.
pub const COLORS: [RGBColor; 5] = [
    RGBColor(0, 0, 0),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

/// At most this many points per line: one per pixel column or so.
const POINTS: usize = 1400;

/// One plotted point: a group of windows.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    /// Trace hours.
    x: f64,
    /// The highest offered load in the group.
    load: f64,
    /// The mean replica count.
    replicas: f64,
    /// The highest window p95.
    p95: Option<f64>,
}

/// One point per group of windows, at most [`POINTS`].
fn downsample(windows: &[WindowRecord], range: &Range<usize>, hours_per_window: f64) -> Vec<Point> {
    let range = range.start.min(windows.len())..range.end.min(windows.len());
    let group = range.len().div_ceil(POINTS).max(1);
    windows[range.clone()]
        .chunks(group)
        .enumerate()
        .map(|(i, chunk)| {
            let x = (range.start + i * group) as f64 * hours_per_window;
            let load = chunk.iter().map(|w| w.offered_rps).fold(0.0, f64::max);
            let replicas =
                chunk.iter().map(|w| f64::from(w.existing)).sum::<f64>() / chunk.len() as f64;
            let p95 = chunk.iter().filter_map(|w| w.p95).reduce(f64::max);
            Point {
                x,
                load,
                replicas,
                p95,
            }
        })
        .collect()
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Draws `lines` over the windows in `range` into `path` (1600 x 1000 PNG). The first line's
/// load is the load drawn (every policy sees the same).
pub fn trace_plot(
    path: &Path,
    title: &str,
    lines: &[Line<'_>],
    range: Range<usize>,
    hours_per_window: f64,
    sla_seconds: f64,
) -> anyhow::Result<()> {
    draw(path, title, lines, range, hours_per_window, sla_seconds)
        .map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))
}

fn draw(
    path: &Path,
    title: &str,
    lines: &[Line<'_>],
    range: Range<usize>,
    hours_per_window: f64,
    sla_seconds: f64,
) -> Result<()> {
    let sampled: Vec<Vec<Point>> = lines
        .iter()
        .map(|l| downsample(l.windows, &range, hours_per_window))
        .collect();
    let Some(first) = sampled.first().filter(|s| !s.is_empty()) else {
        return Err("nothing to draw".into());
    };
    let x0 = range.start as f64 * hours_per_window;
    let x1 = (range.end as f64 * hours_per_window).max(x0 + 1e-6);
    let max_load = first.iter().map(|p| p.load).fold(1.0, f64::max) * 1.05;
    let max_replicas = sampled
        .iter()
        .flatten()
        .map(|p| p.replicas)
        .fold(1.0, f64::max)
        .ceil()
        + 1.0;
    let max_p95 = sampled
        .iter()
        .flatten()
        .filter_map(|p| p.p95)
        .fold(sla_seconds * 2.0, f64::max)
        * 1.5;

    let root = BitMapBackend::new(path, (1600, 1000)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 26))?;
    let (top, rest) = root.split_vertically(260);
    let (middle, bottom) = rest.split_vertically(330);
    let x_desc = "trace time (hours)";

    let mut load = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, 0.0..max_load)?;
    load.configure_mesh()
        .y_desc("offered load (rps)")
        .label_style(("sans-serif", 15))
        .draw()?;
    load.draw_series(AreaSeries::new(
        first.iter().map(|p| (p.x, p.load)),
        0.0,
        RGBColor(120, 120, 120).mix(0.35),
    ))?;

    let mut replicas = ChartBuilder::on(&middle)
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, 0.0..max_replicas)?;
    replicas
        .configure_mesh()
        .y_desc("replicas")
        .label_style(("sans-serif", 15))
        .draw()?;
    for (line, points) in lines.iter().zip(&sampled) {
        let color = line.color;
        replicas
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.x, p.replicas)),
                color.stroke_width(2),
            ))?
            .label(line.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
    }
    replicas
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    let mut latency = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, (0.01..max_p95).log_scale())?;
    latency
        .configure_mesh()
        .y_desc("window p95 (s)")
        .x_desc(x_desc)
        .label_style(("sans-serif", 15))
        .draw()?;
    for (line, points) in lines.iter().zip(&sampled) {
        latency.draw_series(LineSeries::new(
            points.iter().filter_map(|p| Some((p.x, p.p95?.max(0.01)))),
            line.color.mix(0.8),
        ))?;
    }
    latency.draw_series(DashedLineSeries::new(
        [(x0, sla_seconds), (x1, sla_seconds)],
        8,
        6,
        RED.stroke_width(2),
    ))?;
    root.present()?;
    Ok(())
}

/// The `length` windows around the busiest one.
pub fn busiest(windows: &[WindowRecord], length: usize) -> Range<usize> {
    let peak = windows
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.offered_rps.total_cmp(&b.1.offered_rps))
        .map_or(0, |(i, _)| i);
    let start = peak
        .saturating_sub(length / 2)
        .min(windows.len().saturating_sub(length));
    start..(start + length).min(windows.len())
}

/// One policy's settings on a frontier: (replica-minutes, violation minutes, setting) each.
pub struct Frontier {
    pub name: String,
    pub points: Vec<(f64, f64, String)>,
}

/// Replica-minutes against violation minutes: one line per policy across its settings (a
/// single point for the oracle), so that a policy that is cheaper and safer than another shows
/// below and left of it.
pub fn frontier_plot(path: &Path, title: &str, frontiers: &[Frontier]) -> anyhow::Result<()> {
    frontier_plot_on(
        path,
        title,
        frontiers,
        ("replica-minutes (cost)", "SLA-violation minutes"),
    )
}

/// [`frontier_plot`] with other axes (`axes`: the cost's and the violations' names).
pub fn frontier_plot_on(
    path: &Path,
    title: &str,
    frontiers: &[Frontier],
    axes: (&str, &str),
) -> anyhow::Result<()> {
    draw_frontiers(path, title, frontiers, axes)
        .map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))
}

fn draw_frontiers(
    path: &Path,
    title: &str,
    frontiers: &[Frontier],
    axes: (&str, &str),
) -> Result<()> {
    let points = || frontiers.iter().flat_map(|f| &f.points);
    let (x_min, x_max) = points().fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    if !x_min.is_finite() {
        return Err("nothing to draw".into());
    }
    let y_max = points().map(|p| p.1).fold(1.0, f64::max);
    let pad = (x_max - x_min).max(1.0) * 0.08;
    let root = BitMapBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 24))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((x_min - pad)..(x_max + pad), 0.0..(y_max * 1.12))?;
    chart
        .configure_mesh()
        .x_desc(axes.0)
        .y_desc(axes.1)
        .label_style(("sans-serif", 16))
        .draw()?;
    for (frontier, color) in frontiers.iter().zip(COLORS.iter().cycle()) {
        let color = *color;
        let xy: Vec<(f64, f64)> = frontier.points.iter().map(|p| (p.0, p.1)).collect();
        chart
            .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))?
            .label(frontier.name.as_str())
            .legend(move |(x, y)| Circle::new((x + 12, y), 5, color.filled()));
        chart.draw_series(xy.iter().map(|p| Circle::new(*p, 5, color.filled())))?;
        chart.draw_series(frontier.points.iter().map(|p| {
            Text::new(
                p.2.clone(),
                (p.0, p.1),
                ("sans-serif", 14).into_font().color(&color),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(offered_rps: f64, existing: u32, p95: Option<f64>) -> WindowRecord {
        WindowRecord {
            end: 0.0,
            offered_rps,
            ready: existing,
            existing,
            p95,
            violation: false,
            capacity_rps: None,
            not_load: false,
            suspect_telemetry: false,
        }
    }

    #[test]
    fn downsampling_keeps_peaks_and_means() {
        let windows: Vec<WindowRecord> = (0..2800)
            .map(|i| {
                w(
                    if i == 1234 { 900.0 } else { 10.0 },
                    1 + (i % 2) as u32,
                    Some(0.1),
                )
            })
            .collect();
        let points = downsample(&windows, &(0..2800), 1.0 / 60.0);
        assert!(points.len() <= POINTS);
        assert_eq!(points.iter().map(|p| p.load).fold(0.0, f64::max), 900.0);
        assert!(
            (points[0].replicas - 1.5).abs() < 1e-9,
            "two windows per point"
        );
        assert_eq!(busiest(&windows, 100), 1184..1284);
        assert_eq!(busiest(&windows[..50], 100), 0..50);
    }
}
