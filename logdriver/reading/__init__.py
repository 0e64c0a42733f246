"""Reading containers' FIFOs: the poller, frames, per-container FIFO logs, the FIFO registry."""
