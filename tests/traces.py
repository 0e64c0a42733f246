"""Real stack traces, made when the tests run by the runtimes installed on this machine.

Each program fails the way users' programs do: a nested or chained cause, several
goroutines. ``trace(runtime)`` runs it once per test session and returns what it printed
on stderr, line by line; a runtime that is not installed skips the test that asks for it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

PYTHON = """
def inner():
    raise ValueError("inner failure")

def middle():
    try:
        inner()
    except ValueError as exc:
        raise KeyError("middle") from exc

try:
    middle()
except KeyError:
    raise RuntimeError("outer failure")
"""

JAVA = """
public class Trace {
    static void inner() { throw new IllegalStateException("inner failure"); }
    static void middle() {
        try { inner(); } catch (IllegalStateException e) { throw new RuntimeException("middle failure", e); }
    }
    public static void main(String[] args) {
        try { middle(); } catch (RuntimeException e) {
            RuntimeException outer = new RuntimeException("outer failure", e);
            outer.addSuppressed(new java.io.IOException("while closing"));
            throw outer;
        }
    }
}
"""

NODE = """
function inner() { return new TypeError("inner failure"); }
function outer() { throw new Error("outer failure", { cause: inner() }); }
outer();
"""

GO = """
package main

import "time"

func worker(c chan int) { <-c }

func fail(depth int) {
	if depth == 0 {
		panic("boom in fail")
	}
	fail(depth - 1)
}

func main() {
	c := make(chan int)
	for i := 0; i < 3; i++ {
		go worker(c)
	}
	time.Sleep(50 * time.Millisecond)
	fail(3)
}
"""

RUST = """
fn fail(depth: u32) {
    if depth == 0 {
        panic!("boom in fail: {}", depth);
    }
    fail(depth - 1);
}

fn main() {
    fail(2);
}
"""

RUBY = """
def inner
  raise ArgumentError, "inner failure"
end

def outer
  inner
rescue ArgumentError
  raise "outer failure"
end

outer
"""

RUNTIMES = ("python", "java", "node", "go", "rust", "ruby")


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    result = subprocess.run(args, cwd=cwd, capture_output=True, timeout=600, env={**os.environ, **(env or {})})
    assert result.returncode != 0, f"{args} did not fail"
    text = result.stderr.decode().lstrip("\n")  # Rust's panic output begins with a blank line
    assert text.endswith("\n")
    return text[:-1].split("\n")


@functools.cache
def _make(runtime: str) -> list[str] | None:
    work = Path(tempfile.mkdtemp(prefix=f"trace-{runtime}-"))
    try:
        if runtime == "python":
            return _run([shutil.which("python3") or "python3", "-c", PYTHON], work)
        if runtime == "java" and shutil.which("java"):
            (work / "Trace.java").write_text(JAVA)
            return _run(["java", "Trace.java"], work)
        if runtime == "node" and shutil.which("node"):
            (work / "trace.js").write_text(NODE)
            return _run(["node", "trace.js"], work)
        if runtime == "go" and shutil.which("go"):
            (work / "main.go").write_text(GO)
            env = {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "GO111MODULE": "off"}
            subprocess.run(["go", "build", "-o", "trace", "main.go"], cwd=work, check=True, env={**os.environ, **env})
            return _run(["./trace"], work, {"GOTRACEBACK": "all"})
        if runtime == "rust" and shutil.which("rustc"):
            (work / "main.rs").write_text(RUST)
            subprocess.run(["rustc", "-g", "-o", "trace", "main.rs"], cwd=work, check=True)
            return _run(["./trace"], work, {"RUST_BACKTRACE": "1"})
        if runtime == "ruby" and shutil.which("ruby"):
            (work / "trace.rb").write_text(RUBY)
            return _run(["ruby", "trace.rb"], work)
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def trace(runtime: str) -> list[str]:
    """The lines ``runtime``'s failing program printed (skips when it is not installed)."""
    lines = _make(runtime)
    if lines is None:
        pytest.skip(f"{runtime} is not installed here")
    return lines


# A container that prints a trace (mounted at /traces/trace) between ordinary lines: first
# on stderr while stdout keeps printing, then on stdout while stderr does, then JSON lines.
PRINTING_SCRIPT = (
    "echo 'ordinary start'; echo 'ordinary start' >&2; "
    'n=0; while IFS= read -r l; do printf \'%s\\n\' "$l" >&2; n=$((n+1)); echo "ordinary out $n"; done'
    " < /traces/trace; "
    'n=0; while IFS= read -r l; do printf \'%s\\n\' "$l"; n=$((n+1)); echo "ordinary err $n" >&2; done'
    " < /traces/trace; "
    'printf \'%s\\n\' \'{"level":"warn","msg":"parsed","trace_id":"abc","user":{"id":7}}\'; '
    "echo done"
)
JSON_LINE = {"level": "warn", "msg": "parsed", "trace_id": "abc", "user": {"id": 7}}


def expected_messages(lines: list[str], stream: str) -> list[str]:
    """What a sink should get on ``stream`` from PRINTING_SCRIPT, in order: the trace as one
    event, every ordinary line alone (the JSON line's message is its ``msg``)."""
    joined = "\n".join(lines)
    if stream == "stderr":
        return ["ordinary start", joined, *(f"ordinary err {n}" for n in range(1, len(lines) + 1))]
    outs = [f"ordinary out {n}" for n in range(1, len(lines) + 1)]
    return ["ordinary start", *outs, joined, "parsed", "done"]


def mount_trace(lines: list[str], directory: Path) -> tuple[str, ...]:
    """``docker run`` arguments that mount ``lines`` as /traces/trace."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "trace").write_text("\n".join(lines) + "\n")
    directory.chmod(0o755)
    return ("-v", f"{directory}:/traces:ro")
