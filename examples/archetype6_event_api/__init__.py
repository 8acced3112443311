"""Archetype 6: event-triggered, API-driven work — webhooks, functions, a simulation, results."""
