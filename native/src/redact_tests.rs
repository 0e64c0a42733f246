//! A corpus, written here, of secrets of every preset and of near misses that must pass
//! unchanged (no real secret: each is made up in the shape its issuer uses).

use super::*;

fn all() -> Vec<usize> {
    (0..PRESETS.len()).collect()
}

fn run(step: &mut Redact, lines: &[&str]) -> Vec<String> {
    let mut input = Lines::default();
    for (i, line) in lines.iter().enumerate() {
        input.push(Source::Stdout, i as i64, line.as_bytes(), None);
    }
    let out = step.process(input, 0.0, &mut Budget::default());
    out.records
        .iter()
        .map(|r| String::from_utf8(out.line(r).to_vec()).unwrap())
        .collect()
}

fn count(step: &Redact, name: &str) -> u64 {
    let index = COUNTERS.iter().position(|c| c.0 == name).unwrap();
    step.values()[index]
}

const SECRETS: &[(&str, &str, &str)] = &[
    ("credentials", "login ok password=hunter2 user=bob", "login ok password=[REDACTED] user=bob"),
    ("credentials", r#"{"user":"bob","password":"hunter2"}"#, r#"{"user":"bob","password":"[REDACTED]"}"#),
    ("credentials", "db_password: s3cr3t!", "db_password: [REDACTED]"),
    ("credentials", "client_secret=abc123&grant=x", "client_secret=[REDACTED]&grant=x"),
    ("credentials", "X-Api-Key: 0123456789abcdef", "X-Api-Key: [REDACTED]"),
    ("credentials", "connecting to postgres://app:pa55word@db:5432/x", "connecting to postgres://app:[REDACTED]@db:5432/x"),
    ("credentials", "Authorization: Bearer abc.def.ghi", "Authorization: Bearer [REDACTED]"),
    ("credentials", "Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [REDACTED]"),
    ("credentials", "curl -H 'bearer 0123456789abcdefXYZ'", "curl -H 'bearer [REDACTED]'"),
    ("keys", "key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED] used"),
    ("keys", "ключ AKIAIOSFODNN7EXAMPLE готов", "ключ [REDACTED] готов"),
    ("keys", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = [REDACTED]"),
    ("keys", "maps AIzaSyA-0123456789abcdefghijklmnopqrstu", "maps [REDACTED]"),
    ("keys", "gh token ghp_0123456789abcdefghijklmnopqrstuvwxyz", "gh token [REDACTED]"),
    ("keys", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "[REDACTED]"),
    ("keys", "glpat-0123456789abcdefghij in ci", "[REDACTED] in ci"),
    ("keys", "slack xoxb-1234567890-abcdefghij", "slack [REDACTED]"),
    ("keys", "stripe sk_live_0123456789abcdefABCD", "stripe [REDACTED]"),
    ("jwt", "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U ok", "jwt [REDACTED] ok"),
    ("cards", "paid with 4111 1111 1111 1111 today", "paid with [REDACTED] today"),
    ("cards", "card 5500-0000-0000-0004", "card [REDACTED]"),
    ("cards", "card 4012888888881881", "card [REDACTED]"),
    ("emails", "mail to jane.doe+logs@example.co.uk sent", "mail to [REDACTED] sent"),
    ("emails", "письмо для jane@example.com отправлено", "письмо для [REDACTED] отправлено"),
    ("ips", "from 203.0.113.9 via 2001:db8::8a2e:370:7334", "from [REDACTED] via [REDACTED]"),
    ("ips", "peer fe80:0:0:0:202:b3ff:fe1e:8329 up", "peer [REDACTED] up"),
];

const NEAR_MISSES: &[&str] = &[
    "password policy updated",
    "secret santa draw on friday",
    "token_count=5 tokens_used=12",
    "order 4111 1111 1111 1112 failed", // fails Luhn
    "id 550e8400-e29b-41d4-a716-446655440000",
    "commit 9f843fb0c2d1e5a7b3c4d6e8f0a1b2c3d4e5f6a7",
    "at 2026-12-06T10:00:00Z took 12:30:45",
    "version 1.2.3 built",
    "bearer of bad news",
    "user@localhost logged in",
    "AKIA is a prefix",
];

#[test]
fn every_preset_masks_its_secrets_and_only_the_value() {
    for (preset, line, expected) in SECRETS {
        let mut step = Redact::new(&[preset_index(preset).unwrap()], None, Mode::Mask);
        assert_eq!(run(&mut step, &[line]), [*expected], "{preset}: {line}");
        assert!(count(&step, &format!("redacted_{preset}")) >= 1, "{preset}");
    }
}

#[test]
fn near_misses_pass_unchanged_with_every_preset() {
    let mut step = Redact::new(&all(), None, Mode::Mask);
    assert_eq!(run(&mut step, NEAR_MISSES), NEAR_MISSES);
    assert!(step.values().iter().all(|v| *v == 0), "{:?}", step.values());
}

#[test]
fn a_private_key_over_several_lines_is_masked_whole_per_stream() {
    let mut step = Redact::new(&[preset_index("keys").unwrap()], None, Mode::Mask);
    let mut input = Lines::default();
    let lines = [
        (Source::Stdout, "loaded key -----BEGIN RSA PRIVATE KEY-----"),
        (Source::Stderr, "an error meanwhile"),
        (Source::Stdout, "MIIEowIBAAKCAQEA0123456789"),
        (Source::Stdout, "abcdefghijklmnop=="),
        (Source::Stdout, "-----END RSA PRIVATE KEY----- done"),
        (Source::Stdout, "after"),
    ];
    for (i, (source, line)) in lines.iter().enumerate() {
        input.push(source.clone(), i as i64, line.as_bytes(), None);
    }
    let out = step.process(input, 0.0, &mut Budget::default());
    let texts: Vec<&[u8]> = out.records.iter().map(|r| out.line(r)).collect();
    assert_eq!(
        texts,
        [
            &b"loaded key [REDACTED]"[..],
            b"an error meanwhile",
            b"[REDACTED]",
            b"[REDACTED]",
            b"[REDACTED] done",
            b"after"
        ]
    );
    assert_eq!(count(&step, "redacted_keys"), 1);
}

#[test]
fn hash_keeps_equal_values_joinable_and_drop_line_drops() {
    let mut step = Redact::new(&[preset_index("emails").unwrap()], None, Mode::hash(b"k"));
    let out = run(
        &mut step,
        &[
            "a jane@example.com",
            "b jane@example.com",
            "c john@example.com",
        ],
    );
    let tag = |s: &str| s.split_once(' ').unwrap().1.to_string();
    assert_eq!(tag(&out[0]), tag(&out[1]));
    assert_ne!(tag(&out[0]), tag(&out[2]));
    assert!(
        out[0].starts_with("a [HMAC:") && out[0].len() == "a [HMAC:]".len() + 16,
        "{}",
        out[0]
    );
    let mut other_key = Redact::new(&[preset_index("emails").unwrap()], None, Mode::hash(b"q"));
    assert_ne!(run(&mut other_key, &["a jane@example.com"])[0], out[0]);
    let mut drop = Redact::new(&[preset_index("emails").unwrap()], None, Mode::DropLine);
    assert_eq!(
        run(&mut drop, &["x", "to jane@example.com", "y"]),
        ["x", "y"]
    );
    assert_eq!(count(&drop, "redact_dropped_lines"), 1);
}

#[test]
fn a_custom_pattern_masks_its_group_and_drops_what_it_cannot_check() {
    let custom = |p: &str| Custom {
        check: crate::rules::compile(p).unwrap(),
        regex: custom_regex(p).unwrap(),
    };
    let mut step = Redact::new(&[], Some(custom(r"customer=(\d+)")), Mode::Mask);
    assert_eq!(
        run(&mut step, &["customer=12345 ok", "other"]),
        ["customer=[REDACTED] ok", "other"]
    );
    assert_eq!(count(&step, "redacted_by_pattern"), 1);
    let costly = "[ab]{0,1000}X|[ab]{0,1000}Y";
    let mut step = Redact::new(&[], Some(custom(costly)), Mode::Mask);
    let line = "ab".repeat(8000);
    assert!(run(&mut step, &[&line]).is_empty()); // fails closed
    assert_eq!(count(&step, "redact_unchecked_dropped"), 1);
}

#[test]
fn a_line_of_tiny_values_grows_to_twice_its_length_at_most() {
    let line = "pwd=x ".repeat(10_000);
    for mode in [Mode::Mask, Mode::hash(b"k")] {
        let mut step = Redact::new(&[preset_index("credentials").unwrap()], None, mode);
        let out = run(&mut step, &[&line]);
        assert!(
            out[0].len() <= 2 * line.len() + MAX_GROWTH,
            "{}",
            out[0].len()
        );
        assert!(
            !out[0].contains("pwd=x"),
            "every value is masked, the rest as one"
        );
        assert!(out[0].ends_with("[REDACTED]"));
    }
}
