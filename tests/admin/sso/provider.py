"""A real OpenID Connect provider for tests: oidc-provider-mock, in a thread on 127.0.0.1."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import oidc_provider_mock
import werkzeug.serving

# Users the provider knows: dana is in ops-team (operators of "alpha") and leads (admins of
# "alpha"); erin is in ops-team only; frank is in no group.
USERS = {
    "dana-sub": {"preferred_username": "dana", "groups": ["ops-team", "leads"]},
    "erin-sub": {"preferred_username": "erin", "groups": ["ops-team"]},
    "frank-sub": {"preferred_username": "frank", "groups": []},
    "root-sub": {"preferred_username": "root", "groups": ["leads"]},  # a local account's name
}


@contextlib.contextmanager
def running_provider() -> Iterator[str]:
    """The provider until the block ends; yields its issuer URL (http://127.0.0.1:<port>)."""
    app = oidc_provider_mock.app(
        require_nonce=True,
        user_claims=[oidc_provider_mock.User(sub=s, claims=c) for s, c in USERS.items()],
    )
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
