"""golive's client side: what bots, encoders and players use to talk to a golive server."""
