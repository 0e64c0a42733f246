//! The stage on traces as their runtimes print them (tests/unit/test_multiline.py runs the
//! runtimes themselves), and on its limits.

use super::*;
use logdriver_lines::Source;

pub(super) fn counter(stage: &Stage, name: &str) -> u64 {
    stage
        .statistics()
        .into_iter()
        .find(|(n, _)| *n == name)
        .expect("a counter of the stage")
        .1
}

fn append(out: &mut Lines, more: Lines) {
    for record in &more.records {
        out.push_from(&more, record);
    }
}

fn limits() -> Limits {
    Limits {
        max_lines: 1000,
        max_bytes: 1 << 20,
        timeout: 1.0,
    }
}

fn run(stage: &mut Stage, text: &str) -> Vec<(String, u32)> {
    let mut input = Lines::default();
    for (i, line) in text.lines().enumerate() {
        input.push(Source::Stderr, i as i64, line.as_bytes(), None);
    }
    let mut out = stage.process(&input, 0.0);
    append(&mut out, stage.finish(0.0));
    out.records
        .iter()
        .map(|r| {
            let lines = r.event.as_ref().map_or(1, |e| e.lines);
            (String::from_utf8(out.line(r).to_vec()).unwrap(), lines)
        })
        .collect()
}

fn preset(name: &str) -> Stage {
    Stage::new(Rules::preset(name), limits(), false)
}

fn counts(records: &[(String, u32)]) -> Vec<u32> {
    records.iter().map(|r| r.1).collect()
}

#[test]
fn java_with_a_cause() {
    let trace = "before\nException in thread \"main\" java.lang.RuntimeException: outer\n\tat T.main(T.java:9)\nCaused by: java.lang.IllegalStateException: inner\n\tat T.inner(T.java:4)\n\t... 1 more\nafter";
    assert_eq!(counts(&run(&mut preset("java"), trace)), vec![1, 5, 1]);
}

#[test]
fn python_chained_and_a_blank_line_after() {
    let trace = "Traceback (most recent call last):\n  File \"t.py\", line 3, in <module>\n    f()\nValueError: inner\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"t.py\", line 5, in <module>\n    g()\nKeyError: 'outer'\n\nnext";
    let out = run(&mut preset("python"), trace);
    assert_eq!(counts(&out), vec![11, 1, 1]);
    assert_eq!(out[1].0, "");
}

#[test]
fn go_panic_with_goroutines() {
    let trace = "panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:10 +0x1d\n\ngoroutine 6 [sleep]:\ntime.Sleep(0x3b9aca00)\n\t/go/src/runtime/time.go:300 +0x11\ncreated by main.main in goroutine 1\n\t/src/main.go:8 +0x25\nexit status 2\nlater";
    assert_eq!(counts(&run(&mut preset("go"), trace)), vec![12, 1]);
}

#[test]
fn node_uncaught_with_a_cause() {
    let trace = "/app/t.js:7\n    throw new Error(\"outer\", { cause: inner });\n    ^\n\nError: outer\n    at Object.<anonymous> (/app/t.js:7:11)\n    at node:internal/main/run_main_module:28:49 {\n  [cause]: Error: inner\n      at Object.<anonymous> (/app/t.js:5:15)\n}\n\nNode.js v20.20.2\nafter";
    assert_eq!(counts(&run(&mut preset("node"), trace)), vec![12, 1]);
}

#[test]
fn rust_panic_with_a_backtrace() {
    let trace = "thread 'main' panicked at src/main.rs:4:5:\nboom\nstack backtrace:\n   0: rust_begin_unwind\n             at /rustc/library/std/src/panicking.rs:652:5\nnote: Some details are omitted.\nafter";
    assert_eq!(counts(&run(&mut preset("rust"), trace)), vec![6, 1]);
}

#[test]
fn ruby_with_a_cause() {
    let trace = "t.rb:4:in 'rescue in outer': outer (RuntimeError)\n\tfrom t.rb:2:in 'outer'\nt.rb:2:in 'inner': inner (ArgumentError)\n\tfrom t.rb:6:in '<main>'\nafter";
    assert_eq!(counts(&run(&mut preset("ruby"), trace)), vec![4, 1]);
}

#[test]
fn a_json_object_line_is_never_merged() {
    let trace = "java.lang.Error: x\n{\"at\": 1}\n\tat T.main(T.java:1)";
    assert_eq!(counts(&run(&mut preset("java"), trace)), vec![1, 1, 1]);
}

#[test]
fn custom_start_pattern_joins_everything_until_the_next_start() {
    let rules = Rules::custom(Some(r"^\d{4}-"), None).unwrap();
    let mut stage = Stage::new(Some(Arc::new(rules)), limits(), false);
    let out = run(&mut stage, "orphan\n2024- a\n b\n c\n2024- d\n");
    assert_eq!(counts(&out), vec![1, 3, 1]);
}

#[test]
fn limits_cut_with_a_marker_and_lose_nothing() {
    let rules = Rules::custom(None, Some(r"^\s")).unwrap();
    let mut stage = Stage::new(
        Some(Arc::new(rules)),
        Limits {
            max_lines: 10,
            max_bytes: 1 << 20,
            timeout: 1.0,
        },
        false,
    );
    let text: String = std::iter::once("start".to_string())
        .chain((0..24).map(|i| format!(" {i}")))
        .collect::<Vec<_>>()
        .join("\n");
    let out = run(&mut stage, &text);
    assert_eq!(counts(&out), vec![10, 10, 5]);
    assert_eq!(counter(&stage, "multiline_cut"), 2);
}

#[test]
fn timeout_sends_the_open_event() {
    let mut stage = preset("java");
    let mut input = Lines::default();
    input.push(Source::Stdout, 1, b"java.lang.Error: x", None);
    assert!(stage.process(&input, 10.0).records.is_empty());
    assert_eq!(stage.next_deadline(), Some(11.0));
    assert!(stage.flush_due(10.5).records.is_empty());
    assert_eq!(stage.flush_due(11.0).records.len(), 1);
    assert_eq!(counter(&stage, "multiline_timed_out"), 1);
    assert_eq!(stage.next_deadline(), None);
}

#[test]
fn streams_join_separately() {
    let mut stage = preset("java");
    let mut input = Lines::default();
    input.push(Source::Stdout, 1, b"java.lang.Error: out", None);
    input.push(Source::Stderr, 2, b"java.lang.Error: err", None);
    input.push(Source::Stdout, 3, b"\tat A.a(A.java:1)", None);
    input.push(Source::Stderr, 4, b"\tat B.b(B.java:1)", None);
    let mut out = stage.process(&input, 0.0);
    append(&mut out, stage.finish(0.0));
    assert_eq!(out.records.len(), 2);
    assert!(out
        .records
        .iter()
        .all(|r| r.event.as_ref().unwrap().lines == 2));
}

#[test]
fn hostile_patterns_are_refused_or_linear() {
    assert!(compile(&"a".repeat(MAX_PATTERN + 1)).is_err());
    assert!(compile("(a{1000}){1000}").is_err());
    assert!(compile("(a").is_err());
    let catastrophic = compile("^(a+)+$").unwrap();
    let line = "a".repeat(100_000) + "b";
    let started = std::time::Instant::now();
    assert!(!catastrophic.is_match(&line));
    assert!(started.elapsed().as_secs_f64() < 1.0);
}

#[test]
fn a_joined_event_is_not_parsed_and_a_json_line_after_multiline_is() {
    let mut stage = Stage::new(Rules::preset("java"), limits(), true);
    let mut input = Lines::default();
    input.push(Source::Stdout, 1, b"java.lang.Error: x", None);
    input.push(Source::Stdout, 2, b"\tat A.a(A.java:1)", None);
    input.push(Source::Stdout, 3, br#"{"level":"info","msg":"hi"}"#, None);
    let mut out = stage.process(&input, 0.0);
    append(&mut out, stage.finish(0.0));
    assert_eq!(out.records.len(), 2);
    let event = out.records[0].event.as_ref().unwrap();
    assert_eq!((event.lines, event.fields.is_some()), (2, false));
    assert!(out.records[1].event.as_ref().unwrap().fields.is_some());
    assert_eq!(counter(&stage, "json_parsed"), 1);
    assert_eq!(counter(&stage, "multiline_events"), 1);
}

#[test]
fn an_event_a_timeout_sends_goes_through_the_steps_after() {
    let rules = Rules::custom(Some(r"^\{"), None).unwrap();
    let mut stage = Stage::new(Some(Arc::new(rules)), limits(), true);
    let mut input = Lines::default();
    input.push(Source::Stdout, 1, b"x", None);
    let mut out = stage.process(&input, 0.0);
    append(&mut out, stage.flush_due(5.0));
    assert_eq!(out.records.len(), 1);
    assert_eq!(counter(&stage, "json_unparsed"), 1); // the flushed line met parse=json
}

#[test]
fn the_counter_table_names_every_counter_once() {
    let table = counter_table();
    let mut names: Vec<&str> = table.iter().map(|c| c.0).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), table.len());
    let stage = Stage::of(Steps {
        redact: Some(crate::redact::Redact::new(
            &[0],
            None,
            crate::redact::Mode::Mask,
        )),
        redact_store: false,
        multiline: Some(Multiline::new(Rules::preset("java").unwrap(), limits())),
        parse_json: true,
        filter: Some(Filter::new(None, None, Some(2))),
        rate_limit: Some(RateLimit::new(
            Some(crate::rate_limit::Rate {
                per_second: 1.0,
                burst: 1.0,
            }),
            None,
            None,
            false,
        )),
    });
    let reported: Vec<&str> = stage.statistics().iter().map(|c| c.0).collect();
    assert_eq!(reported, table.iter().map(|c| c.0).collect::<Vec<_>>());
}
