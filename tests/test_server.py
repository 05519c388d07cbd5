"""The REST service on a real uvicorn server on 127.0.0.1: a request streams to the
requester's socket, ownership and tokens are enforced, cancel and restart behave."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from lclstream.server.app import create_app
from lclstream.server.auth import TokenStore
from lclstream.server.store import TransferRecord, TransferStore
from proc_helpers import ReceiverThread, free_port


class Server:
    def __init__(
        self,
        state: Path,
        jwt: Any = None,
        max_active_per_user: int = 4,
        data_root: Path | None = None,
        **tls: Any,
    ) -> None:
        self.state = state
        tokens = TokenStore(state / "tokens.json")
        self.alice = tokens.create("alice")
        self.bob = tokens.create("bob")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(
            state, jwt=jwt, max_active_per_user=max_active_per_user, data_root=data_root
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                log_level="warning", **tls)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "state")
    yield s
    s.stop()


def wait_state(c: httpx.Client, tid: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = c.get(f"/api/v2/transfers/{tid}").json()
        if doc["state"] in states:
            return doc
        assert time.monotonic() < deadline, f"transfer stuck in {doc['state']}: {doc}"
        time.sleep(0.1)


def short_body(addr: str, events: int, **extra: Any) -> dict[str, Any]:
    return {"exp": "xpptut15", "run": 670, "detector_name": "jungfrau", "mode": "calib",
            "addr": addr, "events": events, **extra}  # fmt: skip


def test_a_request_streams_to_the_requester(server: Server) -> None:
    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=60)
    with server.client(server.alice) as c:
        r = c.post("/api/v2/transfers/", json=short_body(rx.endpoint(), 30))
        assert r.status_code == 201, r.text
        doc = r.json()
        assert doc["state"] == "provisioning" and doc["requested_by"] == "alice"
        assert (doc["experiment"], doc["run"]) == ("xpptut15", 670)
        done = wait_state(c, doc["id"], {"completed", "failed"})
    got = rx.join()
    assert done["state"] == "completed", done
    assert got.complete and got.events == 30
    assert [t["state"] for t in done["transitions"]] == ["provisioning", "ready", "completed"]
    assert done["progress"]["events_sent"] == 30 and done["progress"]["complete"] is True
    with server.client(server.alice) as c:
        listed = c.get("/api/v2/transfers/").json()
        assert listed["count"] == 1 and listed["data"][0]["id"] == doc["id"]
        log = c.get(f"/api/v2/transfers/{doc['id']}/logs/transitions?mode=tail&lines=1").text
        assert "completed" in log
        logs = f"/api/v2/transfers/{doc['id']}/logs"
        streams = {x["stream"]: x for x in c.get(logs).json()["streams"]}
        assert streams["worker"]["available"] and streams["worker"]["size"] > 0
        worker = c.get(f"{logs}/worker?lines=1000").text
        assert "transfer starting: exp=xpptut15,run=670" in worker
        assert "ended completed, complete: 30 of 30 events sent, 0 dropped" in worker
        assert c.get(f"{logs}/worker?mode=head&lines=1").text.count("\n") == 1
        assert c.get(f"{logs}/worker?mode=tail&bytes=5").text == worker[-5:]
        assert c.get(f"{logs}/nothing").status_code == 404


def test_tokens_and_ownership(server: Server) -> None:
    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=30)
    with server.client(server.alice) as c:
        tid = c.post("/api/v2/transfers/", json=short_body(rx.endpoint(), 5)).json()["id"]
        wait_state(c, tid, {"completed", "failed"})
    rx.join()
    for token in (None, "not-a-token"):
        with server.client(token) as c:
            assert c.get("/api/v2/transfers/").status_code == 401
            assert c.get(f"/api/v2/transfers/{tid}").status_code == 401
            assert c.post("/api/v2/transfers/", json=short_body("tcp://127.0.0.1:1", 1)
                          ).status_code == 401  # fmt: skip
    with server.client(server.bob) as c:  # another user's transfer does not exist for bob
        assert c.get(f"/api/v2/transfers/{tid}").status_code == 404
        assert c.delete(f"/api/v2/transfers/{tid}").status_code == 404
        assert c.get(f"/api/v2/transfers/{tid}/logs").status_code == 404
        assert c.get("/api/v2/transfers/").json() == {"data": [], "count": 0}
        # a skip past SQLite's integers is a clear refusal, not a server error
        assert c.get(f"/api/v2/transfers/?skip={1 << 63}").status_code == 422
        assert c.get(f"/api/v2/transfers/?skip={(1 << 63) - 1}").json()["data"] == []
    # alice's status document is cached (she polled it): a revoked token still gets 401
    import json

    with server.client(server.alice) as c:
        assert c.get(f"/api/v2/transfers/{tid}").json()["state"] == "completed"
        path = server.state / "tokens.json"
        kept = {h: u for h, u in json.loads(path.read_text()).items() if u != "alice"}
        path.write_text(json.dumps(kept))
        assert c.get(f"/api/v2/transfers/{tid}").status_code == 401


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"exp": "xpptut15", "run": 670, "addr": "http://x"}, "addr"),
        ({"exp": "xpptut15", "run": -1, "addr": "tcp://127.0.0.1:1"}, "run"),
        ({"exp": "xpptut15", "run": 1, "addr": "tcp://127.0.0.1:1", "colour": 1}, "colour"),
        (
            {"exp": "xpptut15", "run": 670, "addr": "tcp://127.0.0.1:1", "detector_name": "x"},
            "detector",
        ),
        ({"exp": "xpptut15", "run": 1, "addr": "tcp://127.0.0.1:1"}, "has no run 1"),
        ({"exp": "../etc", "run": 1, "addr": "tcp://127.0.0.1:1"}, "exp"),
        ({"parameters": {"source_identifier": "nothing"}}, "exp=... and run="),
    ],
)
def test_bad_bodies_are_422_naming_the_field(
    server: Server, body: dict[str, Any], words: str
) -> None:
    with server.client(server.alice) as c:
        r = c.post("/api/v2/transfers/", json=body)
    assert r.status_code == 422 and words in r.json()["detail"], r.text


def test_cancel_mid_stream_ends_with_an_end_message_saying_so(server: Server) -> None:
    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=60)
    with server.client(server.alice) as c:
        tid = c.post("/api/v2/transfers/", json=short_body(rx.endpoint(), 100000)).json()["id"]
        deadline = time.monotonic() + 60
        while c.get(f"/api/v2/transfers/{tid}").json()["progress"]["events_sent"] < 20:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert c.delete(f"/api/v2/transfers/{tid}").json() == {"message": "canceling"}
        done = wait_state(c, tid, {"canceled", "completed", "failed"})
    got = rx.join()
    assert done["state"] == "canceled", done
    assert not got.complete and got.end_states == {"cancelled": 1}
    assert 0 < got.events < 100000


def test_hit_filter_drops_misses_and_accounts_for_them(server: Server) -> None:
    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=30)
    with server.client(server.alice) as c:
        addr = rx.endpoint()
        r = c.post("/api/v2/transfers/", json=short_body(addr, 20, hit_filter=True))
        assert r.status_code == 201, r.text
        done = wait_state(c, r.json()["id"], {"completed", "failed"})
        bad = c.post("/api/v2/transfers/", json=short_body(addr, 2, hit_filter=True, mode="raw"))
        assert bad.status_code == 422 and "mode: calib" in bad.json()["detail"]
    assert done["state"] == "completed", done
    got = rx.join()
    p = done["progress"]
    assert p["events_read"] == 20 and p["events_dropped"] > 0
    assert p["events_sent"] + p["events_dropped"] == 20
    assert got.complete and got.events == p["events_sent"]
    assert got.drop_reasons == {"miss": p["events_dropped"]}


def test_parameters_body_binds_for_the_consumer(server: Server) -> None:
    """LCLS' v2 body: an LCLStreamer config; the server binds, connection_info says where."""
    params = {
        "source_identifier": "exp=xpptut15,run=670",
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 12},
        "data_sources": {"detector_data": {"type": "SyntheticDetector", "detector": "jungfrau",
                                           "pool_frames": 2}},
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 4},
        "data_serializer": {"type": "HDF5BinarySerializer"},
        "data_handlers": [{"type": "BinaryDataStreamingDataHandler", "urls": ["tcp://x:1"]}],
    }  # fmt: skip
    with server.client(server.alice) as c:
        r = c.post("/api/v2/transfers/", json={"parameters": params, "consumer_socket": "pull"})
        assert r.status_code == 201, r.text
        tid = r.json()["id"]
        ready = wait_state(c, tid, {"ready", "completed", "failed"})
        assert ready["state"] == "ready", ready
        uri = ready["connection_info"]["uri"].replace("0.0.0.0", "127.0.0.1")
        rx = ReceiverThread(uri, bind=False, timeout=30)
        got = rx.join()
        done = wait_state(c, tid, {"completed", "failed"})
    assert got.complete and got.events == 12 and done["state"] == "completed"


def test_parameters_bodies_reach_only_what_the_server_serves(server: Server) -> None:
    """A config names files; a token holder must not stream the server user's files."""
    from lclstream.sources.registry import register_source, unregister_source

    secret = server.state / "tokens.json"
    base = {
        "source_identifier": "exp=xpptut15,run=670",
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 2},
        "data_sources": {"detector_data": {"type": "SyntheticDetector", "detector": "jungfrau"}},
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 2},
        "data_serializer": {"type": "HDF5BinarySerializer"},
        "data_handlers": [{"type": "BinaryDataStreamingDataHandler", "urls": ["tcp://x:1"]}],
    }  # fmt: skip
    hdf5 = {"type": "Hdf5EventSource", "files": [str(secret)]}
    calib = {"type": "BatchProcessingPipeline", "batch_size": 2,
             "calibration": {"detector_data": {"constants": str(secret)}}}  # fmt: skip
    bad = [
        ({"event_source": hdf5}, "event_source.files: not served"),
        ({"source_identifier": f"exp=xpptut15,run=670,files={secret}"}, "is not in this server"),
        ({"source_identifier": "exp=xpptut15,run=670,dir=/"}, "dir=/ is not in this server's"),
        ({"source_identifier": "exp=xpptut15,run=670,dir=/tmp/../etc"}, "dir=/tmp/../etc is"),
        ({"source_identifier": "exp=xpptut15,run=671"}, "has no run 671 of xpptut15"),
        ({"event_source": {"type": "Psana2EventSource"}}, "is synthetic on this server"),
        ({"processing_pipeline": calib}, "calibration.detector_data.constants"),
        ({"event_source": {"type": "SiteReader", "path": str(secret)}}, "is a plug-in"),
    ]
    register_source("SiteReader", lambda *a, **k: None)  # type: ignore[arg-type,return-value]
    try:
        with server.client(server.alice) as c:
            for change, words in bad:
                r = c.post("/api/v2/transfers/", json={"parameters": {**base, **change}})
                assert r.status_code == 422 and words in r.json()["detail"], (change, r.text)
            assert c.get("/api/v2/transfers/").json()["count"] == 0
            # what stays allowed: the run by exp/run; a data_root key is the server's own
            ok = {**base, "data_root": "/"}
            assert c.post("/api/v2/transfers/", json={"parameters": ok}).status_code == 201
    finally:
        unregister_source("SiteReader")


def test_a_restarted_server_fails_what_was_running(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    store = TransferStore(state / "transfers.db")
    store.add(TransferRecord("t-1", "alice", time.time(), "ready", "xpptut15", 670,
                             "per_transfer", {}, {}), "requested")  # fmt: skip
    s = Server(state)
    try:
        with s.client(s.alice) as c:
            doc = c.get("/api/v2/transfers/t-1").json()
    finally:
        s.stop()
    assert doc["state"] == "failed"
    assert doc["transitions"][-1]["info"] == "server restarted"


def test_healthz(server: Server) -> None:
    with server.client(None) as c:
        assert c.get("/healthz").json()["status"] == "ok"


def test_the_three_shell_flow_with_the_cli(tmp_path: Path) -> None:
    """README: `lclstream serve`, `lclstream receive ADDR`, `lclstream request start --wait`,
    each a real process."""
    import json
    import subprocess
    import sys

    from proc_helpers import cli_env

    cli = [sys.executable, "-m", "lclstream.cli"]
    state = tmp_path / "state"
    env = cli_env()
    made = subprocess.run([*cli, "token", "create", "carol", "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=60, env=env, check=True)  # fmt: skip
    token = made.stdout.strip().splitlines()[-1]
    port, data_port = free_port(), free_port()
    srv = subprocess.Popen([*cli, "serve", "--port", str(port), "--state-dir", str(state)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    addr = f"tcp://127.0.0.1:{data_port}"
    rx = subprocess.Popen([*cli, "receive", addr, "--json", "--expect", "25", "--timeout", "60"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, srv.stderr
            time.sleep(0.2)
        req = subprocess.run(
            [*cli, "request", "start", "--server", url, "--token", token, "--addr", addr,
             "--detector", "jungfrau", "--events", "25", "--wait"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        out, err = rx.communicate(timeout=90)
    finally:
        for p in (rx, srv):
            if p.poll() is None:
                p.terminate()
                p.wait(10)
    assert req.returncode == 0, req.stdout + req.stderr
    assert req.stdout.strip().splitlines()[-1].endswith(": completed")
    assert rx.returncode == 0, err
    doc = json.loads(out)
    assert doc["complete"] is True and doc["events"] == 25


# ------------------------------------------------------------------------------ OIDC JWTs


class Issuer:
    """An OIDC issuer of our own: an RSA key, its JWKS served on 127.0.0.1."""

    def __init__(self, name: str) -> None:
        import http.server
        import json

        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.name = name
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [{**pub, "kid": "k1", "use": "sig", "alg": "RS256"}]})

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, sub: str, *, aud: str = "lclstream", exp: float = 300, iss: str | None = None,
              key: Any = None) -> str:  # fmt: skip
        import jwt

        now = int(time.time())
        claims = {"iss": iss or self.name, "sub": sub, "aud": aud, "iat": now, "exp": now + exp}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": "k1"})

    def close(self) -> None:
        self.httpd.shutdown()


def jwt_exp(token: str) -> float:
    import jwt

    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


def test_oidc_tokens_are_checked_against_the_jwks(tmp_path: Path) -> None:
    import base64
    import hashlib
    import hmac
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from lclstream.server.auth import JwtVerifier

    iss = Issuer("https://idp.example")
    s = Server(tmp_path / "state", jwt=JwtVerifier(iss.url, iss.name, "lclstream"))
    try:
        good = iss.token("dana")
        with s.client(good) as c:
            assert c.get("/api/v2/transfers/").status_code == 200
        brief = iss.token("dana", exp=2)  # a verified token is remembered, never past its exp
        with s.client(brief) as c:
            assert c.get("/api/v2/transfers/").status_code == 200
            time.sleep(max(0.0, jwt_exp(brief) - time.time()) + 0.1)
            assert c.get("/api/v2/transfers/").status_code == 401
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem_pub = iss.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        claims = {"iss": iss.name, "sub": "dana", "aud": "lclstream",
                  "exp": int(time.time()) + 300}  # fmt: skip

        def b64(obj: Any) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        def hs256_with_public_key() -> str:  # the classic key-confusion forgery
            head = b64({"alg": "HS256", "kid": "k1", "typ": "JWT"}) + "." + b64(claims)
            sig = hmac.new(pem_pub, head.encode(), hashlib.sha256).digest()
            return head + "." + base64.urlsafe_b64encode(sig).decode().rstrip("=")

        bad = {
            "expired": iss.token("dana", exp=-10),
            "wrong audience": iss.token("dana", aud="someone-else"),
            "wrong issuer": iss.token("dana", iss="https://evil.example"),
            "another key": iss.token("dana", key=other_key),
            "alg none": b64({"alg": "none", "kid": "k1"}) + "." + b64(claims) + ".",
            "HMAC with the public key": hs256_with_public_key(),
            "garbage": "a.b.c",
        }
        for why, token in bad.items():
            with s.client(token) as c:
                assert c.get("/api/v2/transfers/").status_code == 401, why
        # the owner is (iss, sub): a static-token user named like the JWT's sub is someone else
        rx = ReceiverThread("tcp://127.0.0.1:0", timeout=30)
        with s.client(good) as c:
            r = c.post("/api/v2/transfers/", json=short_body(rx.endpoint(), 3))
            assert r.status_code == 201 and r.json()["requested_by"] == "https://idp.example/dana"
            tid = r.json()["id"]
            wait_state(c, tid, {"completed", "failed"})
        rx.join()
        dana = TokenStore(s.state / "tokens.json").create("dana")
        with s.client(dana) as c:
            assert c.get(f"/api/v2/transfers/{tid}").status_code == 404
    finally:
        s.stop()
        iss.close()


N_SSE = 4000  # about 2 s of stream: long enough for progress reports in between


def test_live_progress_as_server_sent_events_and_metrics(server: Server) -> None:
    import json

    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=60)
    seen: list[dict[str, Any]] = []
    with server.client(server.alice) as c:
        tid = c.post("/api/v2/transfers/", json=short_body(rx.endpoint(), N_SSE)).json()["id"]
        with c.stream("GET", f"/api/v2/transfers/{tid}/events", timeout=60) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            live = ""
            for line in r.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[len("data: ") :]))
                    if not live and seen[-1]["progress"]["events_sent"] > 0:
                        live = c.get("/metrics").text  # while it runs: its own gauges
        metrics = c.get("/metrics").text
    rx.join()
    states = [d["state"] for d in seen]
    assert states[-1] == "completed" and "ready" in states
    sent = [d["progress"]["events_sent"] for d in seen]
    assert sent == sorted(sent) and sent[-1] == N_SSE
    assert len({s for s in sent if 0 < s < N_SSE}) >= 1, sent  # progress while it ran
    from prometheus_client.parser import text_string_to_metric_families

    def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(m.name, tuple(sorted(m.labels.items()))): m.value
                for f in text_string_to_metric_families(text) for m in f.samples}  # fmt: skip

    samples, running = parse(metrics), parse(live)
    assert samples[("lclstream_transfers", (("state", "completed"),))] == 1
    labels = (("experiment", "xpptut15"), ("id", tid), ("run", "670"))
    assert 0 < running[("lclstream_transfer_events_sent", labels)] <= N_SSE
    assert ("lclstream_transfer_events_sent", labels) not in samples  # finished: not active
    assert samples[("lclstream_events_sent_total", ())] == N_SSE
    assert samples[("lclstream_events_dropped_total", ())] == 0
    assert samples[("lclstream_bytes_sent_total", ())] > N_SSE * 1000
    with server.client(server.bob) as c:  # someone else's transfer: 404, no stream
        assert c.get(f"/api/v2/transfers/{tid}/events").status_code == 404


def test_experiment_runs(server: Server) -> None:
    with server.client(server.alice) as c:
        doc = c.get("/api/v2/experiments/xpptut15/runs").json()
        assert doc["runs"][0]["run"] == 670 and "epix10k2M" in doc["runs"][0]["detectors"]
        assert c.get("/api/v2/experiments/nothing/runs").status_code == 404
    with server.client(None) as c:
        assert c.get("/api/v2/experiments/xpptut15/runs").status_code == 401


def test_idempotency_key_makes_one_transfer(server: Server) -> None:
    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=30)
    body = short_body(rx.endpoint(), 5)
    with server.client(server.alice) as c:
        key = {"Idempotency-Key": "req-42"}
        a = c.post("/api/v2/transfers/", json=body, headers=key)
        b = c.post("/api/v2/transfers/", json=body, headers=key)
        assert a.status_code == b.status_code == 201 and a.json()["id"] == b.json()["id"]
        other = c.post("/api/v2/transfers/", json={**body, "events": 6}, headers=key)
        assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
        wait_state(c, a.json()["id"], {"completed", "failed"})
        assert c.get("/api/v2/transfers/").json()["count"] == 1
    assert rx.join().events == 5


def test_per_user_limit_queues_and_the_audit_log_records(tmp_path: Path) -> None:
    import json

    s = Server(tmp_path / "state", max_active_per_user=1)
    try:
        rx1 = ReceiverThread("tcp://127.0.0.1:0", timeout=60)
        rx2 = ReceiverThread("tcp://127.0.0.1:0", timeout=60)
        rx3 = ReceiverThread("tcp://127.0.0.1:0", timeout=5)
        with s.client(s.alice) as c:
            addr1 = rx1.endpoint()
            t1 = c.post("/api/v2/transfers/", json=short_body(addr1, 2000)).json()["id"]
            t2 = c.post("/api/v2/transfers/", json=short_body(rx2.endpoint(), 10)).json()["id"]
            t3 = c.post("/api/v2/transfers/", json=short_body(rx3.endpoint(), 10)).json()["id"]
            second = c.get(f"/api/v2/transfers/{t2}").json()
            assert second["state"] == "provisioning"
            assert "queued" in second["transitions"][-1]["info"]
            assert c.delete(f"/api/v2/transfers/{t3}").json() == {"message": "canceled"}
            first = wait_state(c, t1, {"completed", "failed"})
            done = wait_state(c, t2, {"completed", "failed"})
            third = c.get(f"/api/v2/transfers/{t3}").json()
        assert first["state"] == done["state"] == "completed" and third["state"] == "canceled"
        # the queued one started only after the first ended
        started2 = next(t["created_at"] for t in done["transitions"] if t["state"] == "ready")
        ended1 = first["transitions"][-1]["created_at"]
        assert started2 >= ended1
        assert rx1.join().complete and rx2.join().complete and rx3.join().events == 0
        log = [json.loads(ln) for ln in (s.state / "audit.log").read_text().splitlines()]
        created = [e for e in log if e["event"] == "transfer_created"]
        assert [e["id"] for e in created] == [t1, t2, t3]
        assert all(e["user"] == "alice" and e["experiment"] == "xpptut15" for e in created)
        assert created[0]["destination"] == [addr1]
        assert [e["id"] for e in log if e["event"] == "transfer_canceled"] == [t3]
    finally:
        s.stop()


def test_a_worker_that_dies_fails_its_transfer_not_the_server(server: Server) -> None:
    """SIGKILL the transfer's process mid-stream (what the OOM killer does): the transfer is
    failed with the reason, the server keeps serving."""
    import os
    import signal

    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=3)
    app_runner = server.server.config.app.state.runner
    with server.client(server.alice) as c:
        tid = c.post("/api/v2/transfers/", json=short_body(rx.endpoint(), 100000)).json()["id"]
        wait_state(c, tid, {"ready"})
        pid = app_runner.pid(tid)  # the worker process of this transfer
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        done = wait_state(c, tid, {"failed", "completed", "canceled"})
        assert done["state"] == "failed"
        assert "exit status -9" in done["transitions"][-1]["info"]
        assert c.get("/healthz").json()["status"] == "ok"
        # what the worker wrote before it was killed is still there for its owner
        worker = c.get(f"/api/v2/transfers/{tid}/logs/worker").text
        assert f"worker pid {pid}" in worker and "streaming to tcp://127.0.0.1:" in worker
    with server.client(server.bob) as c:
        assert c.get(f"/api/v2/transfers/{tid}/logs/worker").status_code == 404
    assert not rx.join().complete


def _certs(tmp: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all made here."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.timezone.utc)
    out: dict[str, Path] = {}

    def write(label: str, key: Any, cert: x509.Certificate) -> None:
        out[f"{label}_key"] = tmp / f"{label}.key"
        out[f"{label}_crt"] = tmp / f"{label}.crt"
        out[f"{label}_key"].write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))  # fmt: skip
        out[f"{label}_crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))  # fmt: skip
    write("ca", ca_key, ca)
    for label, san in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(name(label)).issuer_name(ca.subject)
             .public_key(key.public_key()).serial_number(2 if san else 3)
             .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)))  # fmt: skip
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)  # fmt: skip
        write(label, key, b.sign(ca_key, hashes.SHA256()))
    return out


def test_mutual_tls_refuses_clients_without_a_certificate(tmp_path: Path) -> None:
    import ssl

    from lclstream.cli.serve import tls_client_options

    c = _certs(tmp_path)
    s = Server(tmp_path / "state", ssl_certfile=str(c["server_crt"]),
               ssl_keyfile=str(c["server_key"]), **tls_client_options(c["ca_crt"]))  # fmt: skip
    url = s.url.replace("http://", "https://")
    headers = {"Authorization": f"Bearer {s.alice}"}
    with_cert = ssl.create_default_context(cafile=str(c["ca_crt"]))
    with_cert.load_cert_chain(str(c["client_crt"]), str(c["client_key"]))
    without = ssl.create_default_context(cafile=str(c["ca_crt"]))
    try:
        with httpx.Client(base_url=url, verify=with_cert, headers=headers) as ok:
            assert ok.get("/api/v2/transfers/").status_code == 200
        with httpx.Client(base_url=url, verify=without, headers=headers) as anon:
            with pytest.raises(httpx.HTTPError):
                anon.get("/api/v2/transfers/")
        with pytest.raises(httpx.HTTPError):  # and never in clear text
            httpx.get(f"{s.url}/healthz", timeout=5)
    finally:
        s.stop()


def test_python_client_follows_the_event_stream(server: Server) -> None:
    from lclstream.server.client import TransferClient, TransferError

    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=30)
    seen: list[str] = []
    with TransferClient(server.url, server.alice) as c:
        doc = c.start(short_body(rx.endpoint(), 50))
        final = c.wait(doc["id"], on_status=lambda st: seen.append(st["state"]))
        assert final["state"] == "completed" and seen[-1] == "completed" and len(seen) >= 2
        assert c.list()["count"] == 1
        with pytest.raises(TransferError, match="404"):
            c.status("no-such-id")
    with TransferClient(server.url, "wrong") as c, pytest.raises(TransferError, match="401"):
        c.list()
    assert rx.join().complete


def event_numbers(path: str) -> list[int]:
    import h5py

    with h5py.File(path, "r") as f:
        return [int(i) for i in f["LCLS/eventNumber"][()]] if "LCLS/eventNumber" in f else []


def test_data_root_serves_xtc2_runs_raw_and_calibrated(tmp_path: Path) -> None:
    """lclstream serve --data-root: ROOT/EXP/xtc holds a real XTC2 run (psana's tools); a
    short request for it streams through psana2; mode calib uses ROOT/EXP/calib/DET.npz."""
    pytest.importorskip("psana", reason="the psana extra (requirements-psana.txt)")
    import numpy as np
    from lclstream.sources.xtc2_files import make_xtc2_run

    root = tmp_path / "data"
    xtc = make_xtc2_run(root / "xpptut15", 8, segments=1, run=14)
    (root / "xpptut15" / "calib").mkdir()
    shape = (3, 1, 512, 1024)
    np.savez(root / "xpptut15" / "calib" / "jungfrau.npz", pedestals=np.full(shape, 1000, np.float32),
             pixel_gain=np.full(shape, 40, np.float32))  # fmt: skip
    s = Server(tmp_path / "state", data_root=root)
    try:
        with s.client(s.alice) as c:
            runs = c.get("/api/v2/experiments/xpptut15/runs").json()["runs"]
            assert {(r["run"], r["source"]) for r in runs} == {(14, "xtc2"), (670, "synthetic")}
            assert next(r for r in runs if r["run"] == 14)["detectors"] == ["jungfrau"]
            for mode in ("raw", "calib"):
                rx = ReceiverThread("tcp://127.0.0.1:0", timeout=30)
                body = {"exp": "xpptut15", "run": 14, "detector_name": "jungfrau", "mode": mode,
                        "addr": rx.endpoint()}  # fmt: skip
                r = c.post("/api/v2/transfers/", json=body)
                assert r.status_code == 201, r.text
                done = wait_state(c, r.json()["id"], {"completed", "failed"})
                got = rx.join()
                assert done["state"] == "completed", done
                assert got.complete and got.events == len(xtc.timestamps) == 8
            # resume: events 5 and 6 of the run (first_event + events), with psana's ids
            rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path / "resumed", timeout=30)
            r = c.post("/api/v2/transfers/", json={**body, "addr": rx.endpoint(), "mode": "raw",
                                                   "first_event": 5, "events": 2})  # fmt: skip
            assert r.status_code == 201, r.text
            assert wait_state(c, r.json()["id"], {"completed", "failed"})["state"] == "completed"
            got = rx.join()
            assert got.complete and got.events == 2
            ids = [int(i) for f in sorted(got.files) for i in event_numbers(f)]
            assert ids == xtc.timestamps[5:7]
            r = c.post("/api/v2/transfers/", json={**body, "detector_name": "epix10k2M"})
            assert r.status_code == 422 and "has no 'epix10k2M'" in r.json()["detail"]
            # an LCLStreamer config names the run by exp/run: read from the data root
            params = {
                "source_identifier": "exp=xpptut15,run=14",
                "event_source": {"type": "Psana2EventSource"},
                "data_sources": {"detector_data": {"type": "Psana2DetectorInterface",
                                                   "psana_name": "jungfrau",
                                                   "psana_fields": "raw.raw"}},
                "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 4},
                "data_serializer": {"type": "HDF5BinarySerializer"},
                "data_handlers": [{"type": "BinaryDataStreamingDataHandler", "urls": ["tcp://x:1"]}],
            }  # fmt: skip
            own_dir = f"exp=xpptut15,run=14,dir={root / 'xpptut15' / 'xtc'}"  # as LCLS sends it
            tokens = s.state / "tokens.json"
            smuggled = {  # a path of the run, then one that is not, in every spelling
                f"exp=xpptut15,run=14,files={xtc.bigdata}:{tokens}": "is not in this server",
                f"exp=xpptut15,run=14,files={xtc.bigdata};{tokens}": "is not in this server",
                f"exp=xpptut15,run=14,dir={root / 'xpptut15' / 'xtc'}:{tokens}": "dir=",
                f"exp=xpptut15:run=14:dir={tokens.parent}": "paths only as dir= or files=",
            }
            for ident, words in smuggled.items():
                params["source_identifier"] = ident
                r = c.post("/api/v2/transfers/", json={"parameters": params})
                assert r.status_code == 422 and words in r.json()["detail"], (ident, r.text)
            for ident in ("exp=xpptut15,run=14", own_dir):
                params["source_identifier"] = ident
                r = c.post("/api/v2/transfers/", json={"parameters": params})
                assert r.status_code == 201, r.text
                ready = wait_state(c, r.json()["id"], {"ready", "completed", "failed"})
                assert ready["state"] == "ready", ready
                uri = ready["connection_info"]["uri"].replace("0.0.0.0", "127.0.0.1")
                got = ReceiverThread(uri, bind=False, timeout=30).join()
                assert got.complete and got.events == 8
    finally:
        s.stop()
