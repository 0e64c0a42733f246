"""The plugin server: the driver, the plugin socket's RPCs, metrics and health over HTTP."""
