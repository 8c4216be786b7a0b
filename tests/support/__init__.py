"""The test kit: helpers the tests import (`from tests.support.peers import register`).

Fixtures stay in conftest.py files; everything a test calls lives here:
- poll.py: `poll(condition, timeout, what)`, the one way to wait for a condition;
- peers.py: accounts (`User`, `register`), Socket.IO clients (`sio_connect`,
  `SocketPeer`) and `go_live` (a headless creator on air through `live:start`);
- viewer.py: the decoding viewer client (shared with the bench: bench.decoding_viewer);
- servers.py: real `golive serve` and bench processes, and the processes they leave;
- state.py: Redis snapshots, to prove a refused request wrote nothing.
"""
