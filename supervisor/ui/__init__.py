"""The dashboard, `supervisor ui`: its own process, reading (and, with --allow-actions,
acting on) the cluster through Redis alone. Installed with the `ui` extra."""
