"""Running continual-learning experiments: the run loop, plugins and reports."""
