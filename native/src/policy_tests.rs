//! The line-policy steps (keep/drop, rate limit) through the stage, as a container's
//! options make them.

use super::tests::counter;
use super::*;
use crate::filter::{line_level, min_level_index};
use crate::rate_limit::{Rate, MARKER_SOURCE};
use logdriver_lines::Source;

fn batch(lines: &[&str]) -> Lines {
    let mut input = Lines::default();
    for (i, line) in lines.iter().enumerate() {
        input.push(Source::Stdout, i as i64, line.as_bytes(), None);
    }
    input
}

fn texts(lines: &Lines) -> Vec<String> {
    lines
        .records
        .iter()
        .map(|r| String::from_utf8(lines.line(r).to_vec()).unwrap())
        .collect()
}

fn filter(drop: &str, keep: &str, min_level: &str) -> Stage {
    let pattern = |p: &str| (!p.is_empty()).then(|| compile(p).unwrap());
    Stage::of(Steps {
        filter: Some(Filter::new(
            pattern(drop),
            pattern(keep),
            min_level_index(min_level),
        )),
        ..Steps::default()
    })
}

fn limit(lines: Option<(f64, f64)>, bytes: Option<f64>, exempt: &str, block: bool) -> Stage {
    Stage::of(Steps {
        rate_limit: Some(RateLimit::new(
            lines.map(|(per_second, burst)| Rate { per_second, burst }),
            bytes.map(|per_second| Rate {
                per_second,
                burst: per_second,
            }),
            (!exempt.is_empty()).then(|| compile(exempt).unwrap()),
            block,
        )),
        ..Steps::default()
    })
}

/// The lines a marker says were dropped.
fn marked(text: &str) -> u64 {
    let count = text
        .strip_prefix("logdriver: rate limit: ")
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    count.replace(',', "").parse().unwrap()
}

#[test]
fn drop_and_keep_lines_and_the_bytes_of_what_they_drop() {
    let mut stage = filter("healthz", "^GET|^POST", "");
    let out = stage.process(
        &batch(&["GET /healthz", "GET /orders", "debug noise", "POST /orders"]),
        0.0,
    );
    assert_eq!(texts(&out), ["GET /orders", "POST /orders"]);
    assert_eq!(out.arena.len(), "GET /ordersPOST /orders".len()); // what buffers charge
    assert_eq!(counter(&stage, "dropped_by_drop_lines"), 1);
    assert_eq!(counter(&stage, "dropped_by_keep_lines"), 1);
}

#[test]
fn min_level_reads_level_words_and_parsed_levels_and_keeps_what_it_cannot_read() {
    for (line, level) in [
        ("2026-12-06T10:00:00Z DEBUG starting", Some("debug")),
        ("[WARN] disk at 91%", Some("warn")),
        ("level=error msg=\"no route\"", Some("error")),
        ("E: critical: out of memory", Some("fatal")),
        ("INFO: ready", Some("info")),
        ("informational text with no level", None),
        ("the error was handled five words later", None),
    ] {
        let found =
            line_level(line.as_bytes(), None).map(|i| logdriver_lines::LEVEL_NAMES[i as usize]);
        assert_eq!(found, level, "{line}");
    }
    let mut stage = Stage::of(Steps {
        parse_json: true,
        filter: Some(Filter::new(None, None, min_level_index("warn"))),
        ..Steps::default()
    });
    let lines = [
        r#"{"level":"debug","msg":"a"}"#,
        r#"{"level":50,"msg":"b"}"#,
        "DEBUG c",
        "no level d",
        "WARNING e",
    ];
    let out = stage.process(&batch(&lines), 0.0);
    assert_eq!(texts(&out), [lines[1], lines[3], lines[4]]);
    assert_eq!(counter(&stage, "dropped_below_min_level"), 2);
}

#[test]
fn a_rate_limit_drops_past_its_burst_and_marks_it_once_a_second_exactly() {
    let mut stage = limit(Some((10.0, 10.0)), None, "", false);
    let mut passed = 0;
    let mut dropped_in_markers = 0;
    let mut markers = 0;
    let mut written = 0;
    for tick in 0..40 {
        // 100 lines a second, in reads every 0.1 s, for 4 s
        let now = f64::from(tick) * 0.1;
        let lines: Vec<String> = (0..10).map(|n| format!("line {tick} {n}")).collect();
        written += lines.len() as u64;
        let mut out = stage.process(
            &batch(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
            now,
        );
        let due = stage.flush_due(now);
        for record in &due.records {
            out.push_from(&due, record);
        }
        for (record, text) in out.records.iter().zip(texts(&out)) {
            if record.source == Source::Other(MARKER_SOURCE.into()) {
                markers += 1;
                dropped_in_markers += marked(&text);
            } else {
                passed += 1;
            }
        }
    }
    let end = stage.finish(4.0);
    for text in texts(&end) {
        markers += 1;
        dropped_in_markers += marked(&text);
    }
    assert!((45..=52).contains(&passed), "{passed}"); // the burst of 10, then 10 a second
    assert_eq!(passed + dropped_in_markers, written); // exactly
    assert!((4..=6).contains(&markers), "{markers}"); // one a second at most
    assert_eq!(counter(&stage, "rate_limited_lines"), dropped_in_markers);
    assert_eq!(counter(&stage, "rate_limit_markers"), markers);
}

#[test]
fn an_exempt_line_passes_and_costs_the_limit_nothing() {
    let mut stage = limit(Some((1.0, 1.0)), None, "^AUDIT", false);
    let out = stage.process(&batch(&["a", "AUDIT x", "b", "AUDIT y", "c"]), 0.0);
    let texts = texts(&out);
    assert_eq!(&texts[..3], ["a", "AUDIT x", "AUDIT y"]);
    assert!(
        texts[3].starts_with("logdriver: rate limit: 2 lines (2 bytes) dropped"),
        "{texts:?}"
    );
    assert_eq!(counter(&stage, "rate_limit_exempt"), 2);
}

#[test]
fn a_bytes_limit_lets_a_line_longer_than_its_bucket_through_a_full_one() {
    let long = "x".repeat(5000);
    let mut stage = limit(None, Some(1000.0), "", false);
    let out = stage.process(&batch(&[&long, "after"]), 0.0);
    assert_eq!(texts(&out)[0], long);
    assert_eq!(out.records.len(), 2); // the long line, then the marker for "after"
    assert!(!stage.holds_back()); // drop never holds the reader back
}

#[test]
fn block_holds_what_is_over_and_releases_it_at_the_rate_in_order() {
    let mut stage = limit(Some((100.0, 100.0)), None, "", true);
    let lines: Vec<String> = (0..400).map(|n| n.to_string()).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut out = stage.process(&batch(&refs), 10.0);
    assert_eq!(out.records.len(), 100); // the burst
    assert!(stage.holds_back());
    assert!((stage.next_deadline().unwrap() - 10.01).abs() < 1e-9); // the next line's time
    for step in 1..=30 {
        let now = 10.0 + f64::from(step) * 0.1;
        let due = stage.flush_due(now);
        for record in &due.records {
            out.push_from(&due, record);
        }
    }
    assert_eq!(texts(&out), lines); // every line, in order, none dropped, no marker
    assert!(!stage.holds_back());
    assert_eq!(stage.held_bytes(), 0);
}

#[test]
fn block_drops_what_it_holds_only_when_the_memory_budget_has_no_room() {
    let mut stage = limit(Some((10.0, 10.0)), None, "", true);
    let lines: Vec<String> = (0..50).map(|n| n.to_string()).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    stage.process(&batch(&refs), 0.0);
    assert!(stage.held_bytes() > 0);
    let (cut, held) = stage.cut_open(0.0);
    assert_eq!(held, 40);
    assert_eq!(
        texts(&cut),
        ["logdriver: rate limit: 40 lines (80 bytes) dropped in the last 1 s"]
    );
    assert_eq!(stage.held_bytes(), 0);
    let passed = stage.process(&batch(&refs), 2.0); // two seconds refilled, capped at the burst
    assert_eq!(passed.records.len(), 10);
    let end = stage.finish(2.0); // the container is gone: what is held goes at once, counted
    assert_eq!(texts(&end), refs[10..]);
    assert_eq!(counter(&stage, "rate_limit_sent_at_end"), 40);
}
