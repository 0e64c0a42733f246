"""logdriver's sinks. Each depends only on logdriver's public API and is found
through the ``logdriver.sinks`` entry-point group, never imported by logdriver."""
