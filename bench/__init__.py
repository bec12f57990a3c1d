"""Side-by-side benchmarks that print ratios against a named peer."""
