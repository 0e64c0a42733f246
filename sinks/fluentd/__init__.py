"""Fluentd / Fluent Bit sink (forward protocol v1). Work in progress: the sans-IO
protocol core is in ``_forward``; the trio connection and the sink come next."""
