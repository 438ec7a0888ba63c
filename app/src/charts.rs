//! A small SVG line chart (no chart library): one or more series of `(x, y)` points over a
//! shared x axis, with "nice" ticks, axis labels, a legend and optional vertical markers.
//! The scale arithmetic is plain functions, unit-tested natively.

use leptos::prelude::*;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// A CSS colour.
    pub color: &'static str,
    /// Drawn dashed (told apart without colour).
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// A vertical line at `x` with a short label (e.g. where a training phase begins).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub x: f64,
    pub label: String,
}

/// What the y axis shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum YAxis {
    /// From 0 to a little above the largest value.
    FromZero,
    /// Shares 0..1, labelled as percentages.
    Share,
}

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 50.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 42.0;

/// A step of 1, 2, 2.5 or 5 times a power of ten that cuts `span` into about `target` parts.
pub fn nice_step(span: f64, target: usize) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 2.5 {
        2.5
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Ticks from 0 in steps of [`nice_step`] until one reaches `max`; the last tick is the
/// top of the axis.
pub fn ticks_from_zero(max: f64, target: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let step = nice_step(max, target);
    let mut out = vec![0.0];
    let mut i = 1.0;
    while out.last().is_some_and(|&t| t < max - step * 1e-9) {
        out.push(step * i);
        i += 1.0;
    }
    out
}

/// A tick value with as many decimals as its step needs.
pub fn tick_label(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
            + usize::from((step * 10f64.powf(-step.log10().floor())).fract() > 1e-6)
    };
    format!("{value:.decimals$}")
}

/// Maps `v` from `[d0, d1]` onto `[r0, r1]`.
pub fn scale(v: f64, (d0, d1): (f64, f64), (r0, r1): (f64, f64)) -> f64 {
    if d1 == d0 {
        return r0;
    }
    r0 + (v - d0) / (d1 - d0) * (r1 - r0)
}

/// The x axis in seconds or, past two minutes, in minutes: the divisor and the unit.
pub fn time_unit(max_seconds: f64) -> (f64, &'static str) {
    if max_seconds >= 120.0 {
        (60.0, "min")
    } else {
        (1.0, "s")
    }
}

/// A line chart of `series` against time in seconds (`x`).
#[component]
pub fn TimeChart(
    /// Shown above the chart and read out as its name.
    #[prop(into)]
    title: String,
    #[prop(into)] y_label: String,
    y_axis: YAxis,
    #[prop(into)] series: Signal<Vec<Series>>,
    #[prop(into)] markers: Signal<Vec<Marker>>,
    /// `data-testid` of the chart's figure.
    testid: &'static str,
) -> impl IntoView {
    let total_points = move || series.with(|s| s.iter().map(|s| s.points.len()).sum::<usize>());
    let legend = move || {
        series
            .get()
            .into_iter()
            .map(|s| {
                let last = s.points.last().map(|&(_, y)| match y_axis {
                    YAxis::Share => crate::format::percent(y),
                    YAxis::FromZero => format!("{y:.3}"),
                });
                view! {
                    <li data-testid="chart-legend-item" data-series=s.name.clone()>
                        <svg class="legend-swatch" viewBox="0 0 24 8" aria-hidden="true">
                            <line
                                x1="1"
                                y1="4"
                                x2="23"
                                y2="4"
                                stroke=s.color
                                stroke-width="2.5"
                                stroke-dasharray=if s.dashed { "5 3" } else { "none" }
                            />
                        </svg>
                        <span>{s.name.clone()}</span>
                        {last.map(|v| view! { <span class="muted legend-value">{v}</span> })}
                    </li>
                }
            })
            .collect_view()
    };

    let plot = move || {
        let all = series.get();
        let markers = markers.get();
        let max_x = all
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(markers.iter().map(|m| m.x))
            .fold(0.0_f64, f64::max);
        let (divisor, unit) = time_unit(max_x);
        let x_ticks = ticks_from_zero(max_x / divisor, 5);
        let x_step = x_ticks.get(1).copied().unwrap_or(1.0);
        let x_top = x_ticks.last().copied().unwrap_or(1.0) * divisor;
        let (y_ticks, y_top) = match y_axis {
            YAxis::Share => (vec![0.0, 0.25, 0.5, 0.75, 1.0], 1.0),
            YAxis::FromZero => {
                let max_y = all
                    .iter()
                    .flat_map(|s| s.points.iter().map(|p| p.1))
                    .filter(|y| y.is_finite())
                    .fold(0.0_f64, f64::max);
                let t = ticks_from_zero(max_y, 5);
                let top = t.last().copied().unwrap_or(1.0);
                (t, top)
            }
        };
        let y_step = y_ticks.get(1).copied().unwrap_or(1.0);
        let px = move |x: f64| scale(x, (0.0, x_top), (LEFT, WIDTH - RIGHT));
        let py = move |y: f64| scale(y.clamp(0.0, y_top), (0.0, y_top), (HEIGHT - BOTTOM, TOP));

        let y_grid = y_ticks
            .iter()
            .map(|&t| {
                let y = py(t);
                let label = match y_axis {
                    YAxis::Share => format!("{:.0}%", t * 100.0),
                    YAxis::FromZero => tick_label(t, y_step),
                };
                view! {
                    <line class="grid" x1=LEFT x2={WIDTH - RIGHT} y1=y y2=y/>
                    <text class="tick" x={LEFT - 6.0} y={y + 4.0} text-anchor="end">{label}</text>
                }
            })
            .collect_view();
        let x_grid = x_ticks
            .iter()
            .map(|&t| {
                let x = px(t * divisor);
                view! {
                    <line class="tick-mark" x1=x x2=x y1={HEIGHT - BOTTOM} y2={HEIGHT - BOTTOM + 4.0}/>
                    <text class="tick" x=x y={HEIGHT - BOTTOM + 16.0} text-anchor="middle">
                        {tick_label(t, x_step)}
                    </text>
                }
            })
            .collect_view();
        let marker_lines = markers
            .into_iter()
            .map(|m| {
                let x = px(m.x);
                view! {
                    <line class="marker" x1=x x2=x y1=TOP y2={HEIGHT - BOTTOM}/>
                    <text class="marker-label" x={x + 4.0} y={TOP + 10.0}>{m.label}</text>
                }
            })
            .collect_view();
        let lines = all
            .into_iter()
            .map(|s| {
                let finite: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect();
                let path = finite
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                    .collect::<Vec<_>>()
                    .join(" ");
                let name = s.name.clone();
                let dots = finite
                    .into_iter()
                    .map(|(x, y)| {
                        let value = match y_axis {
                            YAxis::Share => crate::format::percent(y),
                            YAxis::FromZero => format!("{y:.4}"),
                        };
                        let tip = format!("{name}: {value} at {}", crate::format::duration(x));
                        view! {
                            <circle
                                class="point"
                                data-testid="chart-point"
                                cx=format!("{:.1}", px(x))
                                cy=format!("{:.1}", py(y))
                                r="3"
                                fill=s.color
                            >
                                <title>{tip}</title>
                            </circle>
                        }
                    })
                    .collect_view();
                view! {
                    <g class="series" data-series=s.name.clone()>
                        <polyline
                            points=path
                            fill="none"
                            stroke=s.color
                            stroke-width="2"
                            stroke-linejoin="round"
                            stroke-dasharray=if s.dashed { "6 4" } else { "none" }
                        />
                        {dots}
                    </g>
                }
            })
            .collect_view();
        view! {
            {y_grid}
            <line class="axis" x1=LEFT x2=LEFT y1=TOP y2={HEIGHT - BOTTOM}/>
            <line class="axis" x1=LEFT x2={WIDTH - RIGHT} y1={HEIGHT - BOTTOM} y2={HEIGHT - BOTTOM}/>
            {x_grid}
            <text class="axis-label" x={(LEFT + WIDTH - RIGHT) / 2.0} y={HEIGHT - 6.0} text-anchor="middle">
                {format!("Time ({unit})")}
            </text>
            {marker_lines}
            {lines}
        }
    };

    let aria = title.clone();
    view! {
        <figure class="chart" data-testid=testid data-points=total_points>
            <figcaption class="chart-head">
                <span class="chart-title">{title}</span>
                <ul class="legend">{legend}</ul>
            </figcaption>
            <svg
                class="chart-svg"
                viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                preserveAspectRatio="xMidYMid meet"
                role="img"
                aria-label=aria
            >
                <text
                    class="axis-label"
                    transform=format!("translate(14 {}) rotate(-90)", (TOP + HEIGHT - BOTTOM) / 2.0)
                    text-anchor="middle"
                >
                    {y_label}
                </text>
                {plot}
                <Show when=move || total_points() == 0>
                    <text
                        class="chart-empty"
                        x={(LEFT + WIDTH - RIGHT) / 2.0}
                        y={(TOP + HEIGHT - BOTTOM) / 2.0}
                        text-anchor="middle"
                    >
                        "Waiting for the first epoch…"
                    </text>
                </Show>
            </svg>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_nice() {
        assert_eq!(nice_step(10.0, 5), 2.0);
        assert_eq!(nice_step(1.0, 4), 0.25);
        assert_eq!(nice_step(0.7, 5), 0.2);
        assert_eq!(nice_step(300.0, 6), 50.0);
        assert_eq!(nice_step(0.0, 5), 1.0);
    }

    #[test]
    fn ticks_cover_the_maximum() {
        assert_eq!(
            ticks_from_zero(1.1, 5),
            vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
        );
        assert_eq!(
            ticks_from_zero(10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        assert_eq!(ticks_from_zero(0.0, 5).last(), Some(&1.0));
        assert_eq!(ticks_from_zero(f64::NAN, 5).last(), Some(&1.0));
    }

    #[test]
    fn labels_and_scales() {
        assert_eq!(tick_label(1.5, 0.5), "1.5");
        assert_eq!(tick_label(0.75, 0.25), "0.75");
        assert_eq!(tick_label(40.0, 20.0), "40");
        assert_eq!(scale(5.0, (0.0, 10.0), (100.0, 0.0)), 50.0);
        assert_eq!(scale(3.0, (2.0, 2.0), (7.0, 9.0)), 7.0);
        assert_eq!(time_unit(30.0), (1.0, "s"));
        assert_eq!(time_unit(600.0), (60.0, "min"));
    }
}
