"""Delivery sinks, one module each; ``base`` holds the contract they all keep."""
