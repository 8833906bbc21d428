"""The OData feed read by a client nobody here wrote: Apache Olingo's OData v4 client (5.0.0, from
Maven Central), as a BI tool reads it, against analytics running as a uvicorn process with a round
published. OlingoCheck.java parses $metadata and checks every value it reads against its type, then
sorts and keeps the top 20 rows, filters with nested parentheses, counts (/$count and $count=true),
looks a row up by key and asks for $expand; the rows must be the JSON API's.

Maven fetches the jars (cached in ~/.m2); without java, javac or mvn on PATH the test is skipped.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from services.analytics.synthetic import synthetic_round
from shared.infra import free_port
from shared.testing.fixtures import bearer, create_test_database, make_service_env, publish_events
from shared.testing.processes import ServiceProcess

HERE = Path(__file__).resolve().parent
TOOLS = ("java", "javac", "mvn")
pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in TOOLS),
    reason="needs a JDK (java, javac; 17+) and Maven (mvn) on PATH: apt-get install -y openjdk-17-jdk-headless maven",
)
KEY_COLUMNS = ("round_id", "question", "dimension", "kommunekode", "level")


def build_olingo_check(out: Path) -> str:
    """Compile OlingoCheck.java against Olingo's jars (Maven resolves them); the classpath to run it."""
    classpath_file = out / "classpath.txt"
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(HERE / "pom.xml"), "dependency:build-classpath", f"-Dmdep.outputFile={classpath_file}"],
        check=True, timeout=600, capture_output=True,
    )
    classes = out / "classes"
    classpath = classpath_file.read_text().strip()
    subprocess.run(
        ["javac", "-d", str(classes), "-cp", classpath, str(HERE / "src/main/java/borgerblik/OlingoCheck.java")],
        check=True, timeout=300, capture_output=True,
    )
    return f"{classes}:{classpath}"


def row_id(row: dict) -> str:
    return "~".join(str(row[c]) for c in KEY_COLUMNS)


async def test_olingo_reads_the_same_rows_as_the_json_api(postgres_admin_url, kafka_bootstrap, dev_issuer, data_keys, tmp_path):
    classpath = await asyncio.to_thread(build_olingo_check, tmp_path)
    database_url = await create_test_database(postgres_admin_url)
    prefix = f"t{uuid.uuid4().hex[:10]}."
    env = {
        **make_service_env(database_url, kafka_bootstrap, prefix, dev_issuer, data_keys, tmp_path),
        "PUBLICATION_RELEASE_QUIET_SECONDS": "0.3",
        "PUBLICATION_PRELIMINARY_SCOPE": "all",
    }
    rnd = synthetic_round("olingo-1", ["101", "147", "751"], respondents=260, seed=5, questions=("q1", "q12", "q13"))
    kl = dev_issuer.mint("kl-bi", ["aggregates:read", "kommuner:all"])
    service = ServiceProcess("analytics", free_port(), env, log_file=tmp_path / "analytics.log").start()
    try:
        await asyncio.to_thread(service.wait_healthy, 90)
        await publish_events(kafka_bootstrap, prefix, [*rnd.samples, *rnd.invitations, *rnd.responses])
        async with httpx.AsyncClient(base_url=service.url, timeout=60, headers=bearer(kl)) as client:
            async with asyncio.timeout(90):
                while True:  # until a release holds every answer
                    r = await client.get("/rounds/olingo-1/response-rates")
                    if r.status_code == 200 and r.json()["rows"][0]["answers"] == len(rnd.responses):
                        break
                    await asyncio.sleep(0.3)
            page = (await client.get("/rounds/olingo-1/indicators", params={"limit": 5000})).json()
            assert page["total"] == len(page["rows"])
            rows = page["rows"]

            run = await asyncio.to_thread(
                subprocess.run,
                ["java", "-cp", classpath, "borgerblik.OlingoCheck", f"{service.url}/odata", kl, "olingo-1"],
                capture_output=True, text=True, timeout=300,
            )
            assert run.returncode == 0, run.stderr[-4000:]
            seen = json.loads(run.stdout)
    finally:
        service.stop()

    assert seen["key"] == ["id"]
    assert seen["described"] == len(rows[0]) + 4  # every property: the row's columns, id and the release's three

    # $orderby=mean desc&$top=20: the JSON rows sorted the same way (null last, ties in table order).
    assert "%24orderby=mean%20desc" in seen["sorted_top_uri"] or "$orderby=mean desc" in seen["sorted_top_uri"]
    by_mean = sorted((r for r in rows if r["mean"] is not None), key=lambda r: -r["mean"])
    expected_top = [row_id(r) for r in (by_mean + [r for r in rows if r["mean"] is None])[:20]]
    assert seen["sorted_top"] == expected_top

    # ((round_id eq ..) and (dimension eq 'maalgruppe')) and (((mean gt 3.0) or (not (kommunekode eq 'national')))
    # and startswith(question,'q1')): null mean is not > 3.
    def wanted(r: dict) -> bool:
        return (
            r["dimension"] == "maalgruppe"
            and ((r["mean"] is not None and r["mean"] > 3.0) or r["kommunekode"] != "national")
            and r["question"].startswith("q1")
        )

    expected = sorted(row_id(r) for r in rows if wanted(r))
    assert "((" in seen["filter_uri"].replace("%28", "(")
    assert seen["filtered"] == expected and 0 < len(expected) < len(rows)
    assert seen["count"] == seen["inline_count"] == len(expected)

    first = next(r for r in rows if row_id(r) == expected_top[0])
    assert seen["by_key"] == {"id": expected_top[0], "mean": first["mean"]}

    assert "501" in seen["expand"]["status_line"]
    error = json.loads(seen["expand"]["body"])["error"]
    assert error["code"] == "NotImplemented" and error["target"] == "$expand"
    assert seen["bad_filter"]["status"] == 400 and "no_such_column" in seen["bad_filter"]["message"]
    assert seen["bad_filter"]["target"] == "$filter"
