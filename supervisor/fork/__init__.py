"""What crosses the fork between the master and a child: used by both sides."""
