"""Load generators that talk to a running golive over the network (see README, Benchmarks)."""
