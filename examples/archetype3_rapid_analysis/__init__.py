"""Archetype 3: cross-facility rapid analysis and steering, with failover between sites."""
