"""Console commands: convert, evaluate, bench, bag, demo, train; the GPU check and its bundle."""
