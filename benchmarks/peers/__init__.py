"""LRNs of other JAX libraries, as published, for the benchmarks (see each file's header)."""
