"""Every exception logdriver raises on purpose, in one tree.

Each docstring says whose fault the error is, so a caller knows whether to
fix its input, count-and-continue, or retry later.
"""

from __future__ import annotations


class LogDriverError(Exception):
    """Base class for logdriver's own errors."""


class ConfigError(LogDriverError):
    """A log-opt or plugin setting has a value logdriver cannot use.

    The user's fault: the message names the option and what it accepts, and
    StartLogging returns it so that ``docker run`` fails with it.
    """

    def __init__(self, option: str, value: str, accepts: str) -> None:
        self.option = option
        self.value = value
        self.accepts = accepts
        kind = "setting" if option.startswith("LOGDRIVER_") else "log-opt"  # a plugin-wide variable, or a log-opt
        super().__init__(f"logdriver: invalid value {value!r} for {kind} {option!r}: expected {accepts}")


class UnknownOptionError(LogDriverError):
    """A log-opt that is neither logdriver's nor the engine's own (a typo, or another driver's)."""

    def __init__(self, option: str, suggestion: str | None) -> None:
        self.option = option
        self.suggestion = suggestion
        hint = f"did you mean {suggestion!r}?" if suggestion else "see `python -m logdriver options` for the list"
        shown = option if len(option) <= 100 else option[:100] + f"... ({len(option)} characters)"
        super().__init__(f"logdriver: unknown log-opt {shown!r}; {hint}")


class RpcError(LogDriverError):
    """A plugin RPC request from the daemon (or an impostor) was malformed.

    The caller's fault: answered with ``{"Err": ...}``; no state changes.
    """


class AlreadyRunningError(LogDriverError):
    """Another logdriver process holds the state directory's lock.

    The operator's: two plugins on one state directory would read each other's FIFOs
    and remove each other's socket. The second one refuses to start and touches nothing.
    """

    def __init__(self, state_dir: str, holder: str) -> None:
        self.state_dir = state_dir
        super().__init__(
            f"logdriver: another logdriver ({holder or 'pid unknown'}) is serving state directory {state_dir}; "
            "stop it first, or give this one its own LOGDRIVER_STATE_DIR and LOGDRIVER_SOCKET"
        )


def is_native_panic(exc: BaseException) -> bool:
    """A panic in native code (ours or a sink's renderer), which PyO3 raises as
    ``pyo3_runtime.PanicException``: a ``BaseException``, so ``except Exception`` lets it
    end the plugin. Each extension module has its own class of that name, so it is told
    by name. A bug of ours: contained to the FIFO or request it came from, and logged."""
    kind = type(exc)
    return kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"
