"""Pipelines with ordered stages and win probabilities; deals per customer moved by API and partner events."""
