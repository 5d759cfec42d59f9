"""The ``pineapple-jobs`` command line client."""
