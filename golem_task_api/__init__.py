"""Our own wire-compatible runtime of the Golem Task API."""
