"""Local runtime: ``python -m shared.devstack up`` (``make up``) and ``... demo`` (``make demo``).

``up`` starts what is missing (embedded PostgreSQL when ``DATABASE_URL`` is unset, the Tansu broker
when ``KAFKA_BOOTSTRAP_SERVERS`` is unset), the development token issuer and the five services as
processes, prints their URLs and stops all of it on Ctrl-C.

``demo`` drives a small synthetic round through the running services' public APIs, with tokens
fetched by OAuth2 client credentials: the operator defines the round, vendors deliver, sampling
draws, the operator confirms the send dates, citizens answer; it prints what arrived in analytics.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.crypto import new_key
from shared.infra import LOCAL_KAFKA_PORT, TansuBroker, free_port, port_open, start_embedded_postgres, wait_for_port
from shared.testing.processes import DEFAULT_PORTS, REPO_ROOT, SERVICES, ServiceProcess

STATE = REPO_ROOT / ".run"
ISSUER_PORT = 8000


def dev_keys() -> dict[str, str]:
    """Development keys, made once and kept in .run/ (never used outside this machine)."""
    path = STATE / "dev-keys.json"
    if not path.exists():
        STATE.mkdir(exist_ok=True)
        keys = {
            "PSEUDONYM_KEY": new_key(),
            "CPR_KEYS": json.dumps({"dev-cpr-1": new_key()}),
            "CPR_ACTIVE_KEY_ID": "dev-cpr-1",
            "CONTACT_KEYS": json.dumps({"dev-contact-1": new_key()}),
            "CONTACT_ACTIVE_KEY_ID": "dev-contact-1",
            "LINK_KEY": new_key(),
        }
        path.write_text(json.dumps(keys, indent=2))
        path.chmod(0o600)
    keys = json.loads(path.read_text())
    if "INTERVIEW_KEYS" not in keys:  # a key file made before interviews by phone
        keys |= {"INTERVIEW_KEYS": json.dumps({"dev-interview-1": new_key()}), "INTERVIEW_ACTIVE_KEY_ID": "dev-interview-1"}
        path.write_text(json.dumps(keys, indent=2))
    return keys


def runtime_dir() -> None:
    """A private XDG runtime directory when the session has none (a container, ssh without
    systemd-logind): embedded PostgreSQL puts its lock there, through platformdirs, which warns
    and falls back to /tmp otherwise."""
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and Path(current).is_dir():
        return
    path = STATE / "xdg-runtime"
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(path)


def banner(services_healthy: float) -> str:
    """What a newcomer needs after `make up`: where things are and how to log in."""
    analytics, responses = (f"http://127.0.0.1:{DEFAULT_PORTS[name]}" for name in ("analytics", "responses"))
    return "\n".join([
        f"\nAll five services healthy after {services_healthy:.1f} s.",
        "",
        f"  Dashboard   {analytics}/dashboard/   (also {analytics}/)",
        "              log in with a dev client from deploy/dev-clients.json, e.g.",
        "                aarhus-bi / dev-secret-aarhus       (Aarhus Kommune's results)",
        "                kl-operator / dev-secret-kl         (KL: every municipality and the rounds' overview)",
        f"  Overview    {analytics}/dashboard/rounds/<round>   (KL's operator; listed on the dashboard's start page)",
        f"  Survey      {responses}/s/<token>   (links are in the letters in {STATE / 'dispatch-sink'})",
        "  A first round: README.md, \"Your first round\"; or `make demo` drives one.",
    ])


def up() -> None:
    STATE.mkdir(exist_ok=True)
    (STATE / "logs").mkdir(exist_ok=True)
    runtime_dir()
    started = time.monotonic()
    cleanups = []
    env = {**dev_keys(), "DEV_SINK_DIR": str(STATE / "dispatch-sink"), "LOCAL_STATE_DIR": str(STATE)}

    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        server, database_url = start_embedded_postgres(STATE / "pg")
        cleanups.append(server.cleanup)
        print(f"PostgreSQL (embedded)  {STATE / 'pg'}")
    env["DATABASE_URL"] = database_url

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        port = LOCAL_KAFKA_PORT if not port_open("127.0.0.1", LOCAL_KAFKA_PORT) else free_port()
        broker = TansuBroker(port, log_file=STATE / "logs" / "tansu.log").start()
        cleanups.append(broker.stop)
        bootstrap = broker.bootstrap_servers
        print(f"Kafka (embedded Tansu) {bootstrap}")
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap

    issuer = subprocess.Popen(
        [sys.executable, "-m", "shared.auth.dev_issuer", "--port", str(ISSUER_PORT), "--key-file", str(STATE / "dev-issuer-key.json")],
        cwd=REPO_ROOT,
        stdout=open(STATE / "logs" / "dev-issuer.log", "ab"),
        stderr=subprocess.STDOUT,
    )
    cleanups.append(issuer.terminate)
    wait_for_port("127.0.0.1", ISSUER_PORT, 30)
    env["AUTH_JWKS_URL"] = f"http://127.0.0.1:{ISSUER_PORT}/.well-known/jwks.json"
    env["SURVEY_BASE_URL"] = f"http://127.0.0.1:{DEFAULT_PORTS['responses']}/s/"
    # A local round is released 20 s after its answers stop (production: 5 minutes, or hourly
    # while answers keep coming; docs/analytics-method.md, releases).
    env.setdefault("PUBLICATION_RELEASE_QUIET_SECONDS", "20")

    services = [
        ServiceProcess(name, DEFAULT_PORTS[name], env, log_file=STATE / "logs" / f"{name}.log").start() for name in SERVICES
    ]
    cleanups.extend(service.stop for service in services)

    def shutdown(*_):
        print("\nstopping ...")
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:  # keep stopping the rest
                print(f"  {exc}")
        print("stopped")
        sys.exit(0)

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        for service in services:
            service.wait_healthy(90)
    except Exception as exc:
        print(f"start-up failed: {exc}")
        shutdown()
    elapsed = time.monotonic() - started
    print("\nServices:")
    print(f"  {'dev token issuer':<12} http://127.0.0.1:{ISSUER_PORT}/oauth/token   (clients: deploy/dev-clients.json)")
    for service in services:
        print(f"  {service.name:<12} {service.url}   docs: {service.url}/docs")
    print(f"\nLetters go to {STATE / 'dispatch-sink'}; logs in {STATE / 'logs'}. Ctrl-C stops everything.")
    print(banner(elapsed), flush=True)
    while True:
        for service in services:
            if service.process and service.process.poll() is not None:
                print(f"{service.name} exited (code {service.process.returncode}); restarting")
                service.start()
        time.sleep(1)


def demo() -> None:
    import random

    import warnings

    import httpx

    from authlib.deprecate import AuthlibDeprecationWarning  # installs Authlib's "always" filter

    with warnings.catch_warnings():
        # Authlib warns that its httpx client will move to the httpx2 package; httpx is the
        # client this project uses, and the demo should print the round, not that notice.
        warnings.simplefilter("ignore", AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import OAuth2Client

    from shared.testing.round import links_in_sink, round_body, synthetic_rows, wait_for

    def client(client_id: str, secret: str) -> OAuth2Client:
        oauth = OAuth2Client(client_id, secret, token_endpoint=f"http://127.0.0.1:{ISSUER_PORT}/oauth/token", timeout=15)
        oauth.fetch_token(grant_type="client_credentials")
        return oauth

    url = {name: f"http://127.0.0.1:{port}" for name, port in DEFAULT_PORTS.items()}
    try:
        vendor = client("momentum-dev", "dev-secret-momentum")
        operator = client("kl-operator", "dev-secret-kl")
    except httpx.HTTPError:
        sys.exit("the platform is not running: start it with `make up` first")
    round_id = f"demo-{int(time.time())}"
    sizes = {"101": 30, "147": 18, "751": 12}
    print(f"round {round_id}")
    # KL's operator defines the round: three municipalities, the invitation about now, a week
    # of fieldwork, letters at any hour (a demo may run at night).
    now = datetime.now(UTC)
    r = operator.post(
        f"{url['ingest']}/rounds",
        json=round_body(
            round_id, name=f"Demo {round_id}", kommuner=list(sizes), delivery_deadline=None,
            invitation_at=now, fieldwork_ends_at=now + timedelta(days=7),
        ),
    )
    r.raise_for_status()
    print(f"  ingest     round defined ({r.json()['phase']}), municipalities {', '.join(sizes)}")
    for i, (kommunekode, size) in enumerate(sizes.items()):
        r = vendor.post(f"{url['ingest']}/rounds/{round_id}/extracts/{kommunekode}", json={"reference_date": "2023-08-01", "rows": synthetic_rows(size, seed=i)})
        r.raise_for_status()
        print(f"  ingest     {kommunekode}: {r.json()['rows_valid']} citizens accepted")

    def frame_ready():
        r = operator.get(f"{url['sampling']}/rounds/{round_id}/frame")
        return r.status_code == 200 and sum(s["population"] for s in r.json()["strata"]) == sum(sizes.values())

    wait_for(frame_ready, 60, "the sampling frame")
    r = operator.post(f"{url['sampling']}/rounds/{round_id}/draws", json={"seed": 2026, "sample_per_stratum": 1000})
    r.raise_for_status()
    sampled = r.json()["sampled"]
    print(f"  sampling   drew {sampled} citizens (seed 2026)")

    # The draw plans the letters; the operator confirms the send dates once ingest has seen it.
    def drawn():
        return operator.get(f"{url['ingest']}/rounds/{round_id}").json()["phase"] == "sample_drawn"

    wait_for(drawn, 60, "ingest to see the draw")
    now = datetime.now(UTC)
    r = operator.post(
        f"{url['ingest']}/rounds/{round_id}/schedule",
        json={"invitation_at": now.isoformat(), "fieldwork_ends_at": (now + timedelta(days=7)).isoformat()},
    )
    r.raise_for_status()
    print(f"  ingest     send dates confirmed ({r.json()['phase']}): invitation {now:%H:%M:%S} UTC")

    sink = STATE / "dispatch-sink"
    before = set(links_in_sink(sink).values())
    links = wait_for(lambda: (new := set(links_in_sink(sink).values()) - before) and len(new) >= sampled and new, 60, "the letters")
    print(f"  dispatch   {len(links)} letters in {sink}")
    rng = random.Random(7)
    answered = 0
    for token in sorted(links)[: sampled * 2 // 3]:
        answers = {f"q{i}": rng.choice([1, 2, 3, 4, 5]) for i in range(1, 14)}
        wait_for(lambda: httpx.post(f"{url['responses']}/api/survey/{token}/submission", json={"answers": answers}).status_code in (201, 409), 30, "a link")
        answered += 1
    print(f"  responses  {answered} citizens answered")

    # Analytics publishes releases: during fieldwork the release loop cuts one when the answers
    # have been quiet for PUBLICATION_RELEASE_QUIET_SECONDS (20 s here), publishing who answered
    # and never what (scope "rates", docs/analytics-method.md); until then the round has none (404).
    def counted():
        r = operator.get(f"{url['analytics']}/rounds/{round_id}/response-rates")
        if r.status_code == 200 and r.json()["rows"] and r.json()["rows"][0]["answers"] == answered:
            return r.json()
        return None

    published = wait_for(counted, 90, "analytics")
    rows = published["rows"]
    print(f"  analytics  release {published['release']} ({published['phase']}); response rates, suppressed cells as —:")
    print(f"    {'kommune':<10}{'invited':>8}{'answers':>9}{'rate':>8}")
    for row in rows:
        answers = "—" if row["suppressed"] else str(row["answers"])
        rate = "—" if row["response_rate"] is None else f"{row['response_rate']:.0%}"
        print(f"    {row['kommunekode']:<10}{row['invited']:>8}{answers:>9}{rate:>8}")
    # After fieldwork the operator ends it and cuts the final release: the results are published.
    r = operator.post(f"{url['ingest']}/rounds/{round_id}/end-fieldwork")
    if r.status_code != 200:
        sys.exit(f"ending fieldwork failed: {r.status_code} {r.text}")
    r = operator.post(f"{url['analytics']}/rounds/{round_id}/releases", json={"phase": "final"}, timeout=300)
    if r.status_code != 201:
        sys.exit(f"the final release failed: {r.status_code} {r.text}")
    final = r.json()
    page = operator.get(f"{url['analytics']}/rounds/{round_id}/indicators", params={"question": "q13", "dimension": "maalgruppe", "level": "total"})
    shown = [f"{row['kommunekode']} {row['mean']:.2f}" for row in page.json()["rows"] if not row["suppressed"] and row["mean"] is not None]
    print(f"  analytics  fieldwork ended; final release {final['release']}, q13's mean where published: {', '.join(shown) or 'none'}")
    print(f"\n  dashboard  {url['analytics']}/dashboard/r/{round_id}/k/national   (log in as kl-operator / dev-secret-kl)")
    print(f"  overview   {url['analytics']}/dashboard/rounds/{round_id}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.devstack")
    parser.add_argument("command", choices=["up", "demo"])
    args = parser.parse_args()
    {"up": up, "demo": demo}[args.command]()


if __name__ == "__main__":
    main()
