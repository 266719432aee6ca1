"""The master (arbiter): forks, watches and signals children; it never talks to Redis."""
