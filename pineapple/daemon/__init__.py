"""The ``pineapple-jobd`` daemon: configuration, service wiring, entry point."""
