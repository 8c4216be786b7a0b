"""The test kit: helpers the tests import (`from tests.support.peers import register`).

Fixtures stay in conftest.py files; everything a test calls lives here, once
(tests/test_kit.py checks):
- poll.py: `poll(condition, timeout, what)`, the one way to wait for a condition;
- peers.py: accounts (`User`, `register`), Socket.IO clients (`sio_connect`,
  `SocketPeer`, `open_tab`) and `go_live` (a headless creator on air through `live:start`);
- viewer.py: the decoding viewer client (shared with the bench: bench.decoding_viewer);
- engineio.py: a hand-made Engine.IO websocket, for bytes no Socket.IO client sends;
- http.py: blocking HTTP to a real `golive serve`;
- pages.py: what a person does in a browser page (accounts, sign-in, the studio);
- servers.py: real `golive serve` and bench processes, and the processes they leave;
- state.py: Redis snapshots, to prove a refused request wrote nothing.
"""
