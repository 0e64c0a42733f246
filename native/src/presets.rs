//! The `multiline=<preset>` rules, as data: for each runtime, the lines that can begin a
//! stack trace and, state by state, the lines that continue it.
//!
//! A rule reads "in state `from`, a line matching `pattern` joins the event and moves it to
//! `to`". `from == "start"` rules begin an event. An empty pattern matches any line. A
//! `hold` rule joins only if the next line continues the event too (Python's blank line
//! before "During handling of the above exception"); otherwise the held line is sent on
//! its own. A state no rule leaves from ends the event at once (Node's "Node.js v20"). The
//! patterns were checked against traces the runtimes print (tests/unit/test_multiline.py
//! makes them when it runs).

pub struct RuleDef {
    pub from: &'static str,
    pub pattern: &'static str,
    pub to: &'static str,
    pub hold: bool,
}

const fn join(from: &'static str, pattern: &'static str, to: &'static str) -> RuleDef {
    RuleDef {
        from,
        pattern,
        to,
        hold: false,
    }
}

const fn hold(from: &'static str, pattern: &'static str, to: &'static str) -> RuleDef {
    RuleDef {
        from,
        pattern,
        to,
        hold: true,
    }
}

/// An exception's class name ends the line's first word before a colon (or the line).
const JAVA: &[RuleDef] = &[
    join(
        "start",
        r"(?:^|[\w$.])(?:Exception|Error|Throwable)(?::|$)",
        "trace",
    ),
    join("trace", r"^\s+at ", "trace"),
    join(
        "trace",
        r"^\s*\.\.\. \d+ (?:more|common frames omitted)$",
        "trace",
    ),
    join("trace", r"^\s*Caused by: ", "trace"),
    join("trace", r"^\s*Suppressed: ", "trace"),
];

const PYTHON_TRACEBACK: &str =
    r"^\s*(?:\+ )?(?:Exception Group )?Traceback \(most recent call last\):$";

const PYTHON: &[RuleDef] = &[
    join("start", PYTHON_TRACEBACK, "frames"),
    // File and code lines, carets, and exception groups' "| " lines are all indented.
    join("frames", r"^\s", "frames"),
    join("frames", r"^[A-Za-z_][\w.]*(?::.*)?$", "raised"),
    hold("raised", r"^$", "gap"),
    join(
        "gap",
        r"^(?:During handling of the above exception, another exception occurred|The above exception was the direct cause of the following exception):$",
        "chained",
    ),
    join("chained", r"^$", "next"),
    join("next", PYTHON_TRACEBACK, "frames"),
];

const GO: &[RuleDef] = &[
    join("start", r"^(?:panic|fatal error): ", "panic"),
    join("start", r"^goroutine \d+ \[[^\]]*\]:$", "panic"),
    hold("panic", r"^$", "gap"),
    join("panic", r"^\[signal ", "panic"),
    join("panic", r"^goroutine \d+ \[[^\]]*\]:$", "panic"),
    join("panic", r"^\t", "panic"),
    join("panic", r"^created by ", "panic"),
    join(
        "panic",
        r"^\s*\.\.\.additional frames elided\.\.\.$",
        "panic",
    ),
    join("panic", r"^\S.*\)$", "panic"), // a frame's function: main.worker(0x1, {0xc0, 0x2})
    join("panic", r"^exit status \d+$", "end"),
    join("gap", r"^goroutine \d+ \[[^\]]*\]:$", "panic"),
];

const NODE_ERROR: &str = r"^(?:Uncaught )?[\w$]*(?:Error|Exception)(?: \[\w+\])?(?::.*)?$";

const NODE: &[RuleDef] = &[
    join("start", NODE_ERROR, "stack"),
    // An uncaught error begins with where it was thrown: file:line, the code, a caret.
    join("start", r"^(?:/|file://|node:)\S*:\d+$", "source"),
    join("source", "", "caret"),
    join("caret", r"^\s*\^+\s*$", "blank"),
    join("blank", r"^$", "error"),
    join("error", NODE_ERROR, "stack"),
    join("stack", r"^\s+at ", "stack"),
    join(
        "stack",
        r"^\s+\.\.\. \d+ (?:more|lines matching cause stack trace)",
        "stack",
    ),
    join("stack", r"^\s*\[(?:cause|errors)\]: ", "stack"),
    join("stack", r"^\s+[\w$]+: ", "stack"), // an error's own properties: code: 'ERR_X',
    join("stack", r"^\s*[}\]],?$", "stack"),
    hold("stack", r"^$", "gap"),
    join("gap", r"^Node\.js v\d+", "end"),
];

const RUBY_RAISE: &str = r"^\S+:\d+:in [`'].*\([A-Z]\w*(?:::[A-Z]\w*)*\)$";

const RUBY: &[RuleDef] = &[
    join("start", RUBY_RAISE, "trace"),
    join("trace", r"^\s+from \S+:\d+:in ", "trace"),
    join("trace", r"^\s+\.\.\. \d+ levels\.\.\.$", "trace"),
    join("trace", RUBY_RAISE, "trace"), // its cause
];

const RUST: &[RuleDef] = &[
    // Newer Rust adds the thread's id: thread 'main' (11536) panicked at src/main.rs:4:9:
    join(
        "start",
        r"^thread '[^']*'(?: \(\d+\))? panicked at ",
        "message",
    ),
    join("message", r"^stack backtrace:$", "backtrace"),
    join("message", r"^note: ", "end"),
    join("message", "", "message"), // the panic message may span lines
    join("backtrace", r"^\s+\d+: ", "backtrace"),
    join("backtrace", r"^\s+at ", "backtrace"),
    join("backtrace", r"^note: ", "end"),
];

pub const PRESETS: &[(&str, &[RuleDef])] = &[
    ("java", JAVA),
    ("python", PYTHON),
    ("go", GO),
    ("node", NODE),
    ("ruby", RUBY),
    ("rust", RUST),
];
