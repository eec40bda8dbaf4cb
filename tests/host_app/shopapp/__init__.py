"""A small shop application that uses queuekit, as a host application would."""
