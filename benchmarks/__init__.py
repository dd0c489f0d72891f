"""posestream's benchmarks: the entry points in benchmarks/README.md's table and the harness they
share (``bench_media``, ``machine``, ``store``, ``workers``).  The runtime never imports this
package, and it imports nothing of ``tests``."""
