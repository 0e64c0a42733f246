"""The ``docker logs`` store: each container's own bounded files, and ReadLogs over them."""
