//! Pane arithmetic: which slice of event time a record falls in, and which
//! windows a slice belongs to.

use super::Window;

/// How tumbling, sliding and cumulating windows are cut into panes: slices
/// of event time `pane` long, each wholly inside or outside every window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaneLayout {
    windows: Panes,
    pane: i64,
}

/// The windows that have panes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Panes {
    Tumble { size: i64 },
    Hop { size: i64, slide: i64 },
    Cumulate { step: i64, max_size: i64 },
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl PaneLayout {
    /// The panes of `window`; `None` for session windows, which depend on
    /// the records and have no fixed panes.
    pub fn new(window: Window) -> Option<Self> {
        let (windows, pane) = match window {
            Window::Tumble { size } => (Panes::Tumble { size }, size),
            Window::Hop { size, slide } => (Panes::Hop { size, slide }, gcd(size, slide)),
            Window::Cumulate { step, max_size } => (Panes::Cumulate { step, max_size }, step),
            Window::Session { .. } => return None,
        };
        Some(Self { windows, pane })
    }

    /// The start of the pane holding event time `time`.
    pub fn pane_start(&self, time: i64) -> i64 {
        time.div_euclid(self.pane) * self.pane
    }

    /// The windows `(start, end)` holding the pane that starts at `pane`,
    /// by increasing end.
    pub fn windows(&self, pane: i64) -> Vec<(i64, i64)> {
        match self.windows {
            Panes::Tumble { size } => vec![(pane, pane + size)],
            Panes::Hop { size, slide } => {
                // Windows start at multiples of the slide, after the pane's
                // start less the size and no later than the pane.
                let first = (pane - size).div_euclid(slide) + 1;
                (first..=pane.div_euclid(slide))
                    .map(|i| (i * slide, i * slide + size))
                    .collect()
            }
            Panes::Cumulate { step, max_size } => {
                let start = pane.div_euclid(max_size) * max_size;
                (1..)
                    .map(|i| pane + i * step)
                    .take_while(|end| *end <= start + max_size)
                    .map(|end| (start, end))
                    .collect()
            }
        }
    }

    /// The end of the first window holding the pane at `pane`.
    pub fn first_end(&self, pane: i64) -> i64 {
        match self.windows {
            Panes::Tumble { size } => pane + size,
            Panes::Hop { size, slide } => ((pane - size).div_euclid(slide) + 1) * slide + size,
            Panes::Cumulate { step, .. } => pane + step,
        }
    }

    /// The end of the last window holding the pane at `pane`: once that
    /// window fired, the pane is no longer needed.
    pub fn last_end(&self, pane: i64) -> i64 {
        match self.windows {
            Panes::Tumble { size } => pane + size,
            Panes::Hop { size, slide } => pane.div_euclid(slide) * slide + size,
            Panes::Cumulate { max_size, .. } => pane.div_euclid(max_size) * max_size + max_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_panes_are_the_windows() {
        let layout = PaneLayout::new(Window::Tumble { size: 10 }).expect("panes");
        assert_eq!(layout.pane_start(25), 20);
        assert_eq!(layout.pane_start(-1), -10);
        assert_eq!(layout.windows(20), vec![(20, 30)]);
        assert_eq!((layout.first_end(20), layout.last_end(20)), (30, 30));
    }

    #[test]
    fn sliding_windows_hold_size_over_slide_panes() {
        let layout = PaneLayout::new(Window::Hop { size: 10, slide: 4 }).expect("panes");
        // Panes of gcd(10, 4) = 2.
        assert_eq!((layout.pane_start(7), layout.pane_start(8)), (6, 8));
        // Windows start at multiples of 4; [s, s + 10) must hold [6, 8).
        assert_eq!(layout.windows(6), vec![(0, 10), (4, 14)]);
        assert_eq!((layout.first_end(6), layout.last_end(6)), (10, 14));
        let every = PaneLayout::new(Window::Hop { size: 10, slide: 5 }).expect("panes");
        assert_eq!(every.windows(5), vec![(0, 10), (5, 15)]);
        assert_eq!((every.first_end(5), every.last_end(5)), (10, 15));
    }

    #[test]
    fn cumulating_windows_grow_from_their_start() {
        let layout = PaneLayout::new(Window::Cumulate {
            step: 2,
            max_size: 6,
        })
        .expect("panes");
        assert_eq!(layout.windows(8), vec![(6, 10), (6, 12)]);
        assert_eq!(layout.windows(10), vec![(6, 12)]);
        assert_eq!((layout.first_end(8), layout.last_end(8)), (10, 12));
    }

    #[test]
    fn every_pane_window_agrees_with_first_and_last_end() {
        for window in [
            Window::Tumble { size: 7 },
            Window::Hop { size: 9, slide: 3 },
            Window::Hop { size: 10, slide: 4 },
            Window::Cumulate {
                step: 3,
                max_size: 12,
            },
        ] {
            let layout = PaneLayout::new(window).expect("panes");
            for time in -30..30 {
                let pane = layout.pane_start(time);
                let windows = layout.windows(pane);
                assert!(!windows.is_empty(), "{window}: {time}");
                for (start, end) in &windows {
                    assert!(
                        *start <= time && time < *end,
                        "{window}: {time} in [{start}, {end})"
                    );
                }
                assert_eq!(windows[0].1, layout.first_end(pane), "{window}: {pane}");
                assert_eq!(
                    windows.last().expect("one").1,
                    layout.last_end(pane),
                    "{window}"
                );
            }
        }
    }
}
