"""Console commands: convert, evaluate, bench, bag, demo, train."""
