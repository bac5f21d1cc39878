//! SVG plots of latency distributions (plotters): one cumulative distribution line per series,
//! so medians, tails and differences between series read off one picture.

use plotters::prelude::*;
use std::path::Path;

/// A named set of latency samples (milliseconds).
pub struct Series<'a> {
    /// Legend text.
    pub name: String,
    /// Samples.
    pub samples: &'a [f64],
}

/// Draws the cumulative distribution of each series into an SVG file.
pub fn latency_cdf(path: &Path, title: &str, series: &[Series<'_>]) -> anyhow::Result<()> {
    let max = series.iter().flat_map(|s| s.samples.iter().copied()).fold(0.0f64, f64::max).max(0.001);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max * 1.05, 0.0..1.0)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("latency (ms)")
        .y_desc("fraction of frames at or below")
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let mut sorted = s.samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len().max(1) as f64;
        let points: Vec<(f64, f64)> = sorted.iter().enumerate().map(|(k, v)| (*v, (k + 1) as f64 / n)).collect();
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cdf.svg");
        let a: Vec<f64> = (1..=100).map(f64::from).collect();
        let b: Vec<f64> = (1..=50).map(|v| f64::from(v) * 3.0).collect();
        let series = [Series { name: "relay, 10 x 1".into(), samples: &a }, Series { name: "direct, 10 x 1".into(), samples: &b }];
        latency_cdf(&path, "test", &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("relay, 10 x 1") && svg.contains("direct, 10 x 1"));
        assert!(svg.matches("<polyline").count() >= 2);
    }
}
