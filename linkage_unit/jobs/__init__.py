"""Jobs: the linkage work of a run (`pipeline`) and the worker processes that claim runs."""
