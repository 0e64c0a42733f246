"""Every option has an upper bound (issue 30): ``batch-max-bytes=2g`` spooled 600 MiB and
read it back in one piece, ``buffer-max-bytes=2g`` let one queue take the whole memory
budget. The list is walked from the registry, so a new option joins these tests by itself."""

from __future__ import annotations

import pytest

from logdriver import ConfigError
from logdriver.__main__ import sink_classes
from logdriver.config.options import CONTAINER_OPTIONS, MAX_LOG_OPT_VALUE, parse_log_opts
from logdriver.config.pipeline_options import PIPELINE_OPTIONS
from logdriver.config.registry import Option
from logdriver.config.settings import PLUGIN_OPTIONS

SINKS = {name: cls.from_settings for name, cls in sink_classes().items()}
HUGE = ("1000000000000000000", "1000000Ti", "100000000d")


def every_option() -> list[Option]:
    options = [*CONTAINER_OPTIONS, *PIPELINE_OPTIONS, *PLUGIN_OPTIONS]
    for cls in sink_classes().values():
        options += cls.config.options()
    return options


def numeric(option: Option) -> bool:
    """Whether the option holds a number (its default, or a small value, parses as one)."""
    for text in (option.default, "1", "1s", "1m"):
        try:
            value = option.parse(text) if text else None
        except ValueError:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True
    return False


@pytest.mark.parametrize("option", [o for o in every_option() if numeric(o)], ids=lambda o: o.name)
def test_every_number_is_bounded_and_says_so(option: Option) -> None:
    for text in HUGE:
        with pytest.raises(ValueError, match=r"."):
            option.parse(text)
    # The reference states the bound: a range, or a duration (all at most ten years, it says).
    assert " to " in option.accepts or "duration" in option.accepts, option.accepts


@pytest.mark.parametrize("option", [o for o in every_option() if o.log_opt], ids=lambda o: o.name)
def test_every_log_opt_is_bounded_in_length(option: Option) -> None:
    classes = sink_classes()
    with pytest.raises(ConfigError, match=f"at most {MAX_LOG_OPT_VALUE} characters"):
        parse_log_opts({option.name: "a" * (MAX_LOG_OPT_VALUE + 1)}, {}, {n: c for n, c in classes.items()}, {})
