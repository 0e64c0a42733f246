"""Delivery: per-container pipelines, their queues and spools, budgets, and senders per destination."""
