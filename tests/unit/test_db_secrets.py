"""Finding 3 of issue 13: a database error never puts a secret in an answer or a log line,
on the real PostgreSQL (its messages quote values; SQLAlchemy logs bound parameters)."""

from __future__ import annotations

import logging
import secrets

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from intercloud.api import errors
from intercloud.store import Store
from intercloud.store import db as db_mod
from intercloud.store import models as m
from tests.functional.federation_harness import Router, make_agent
from tests.unit.agent_process import AgentProcess

pytestmark = pytest.mark.postgres


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record's message and formatted exception, as a handler would write them."""
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(formatter.format(r) for r in caplog.records)


@pytest.fixture
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)  # the root: every logger, sqlalchemy.engine included
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # statements and parameters
    return caplog


def test_too_long_key_on_postgres_answers_an_error_and_logs_no_key(
    tmp_path, postgres_url, all_logs
):
    router = Router()
    agent = make_agent(tmp_path, router, "A", 1, database=postgres_url)
    try:
        key = secrets.token_hex(150)  # 300 characters: the column holds 255
        r = agent.admin(
            "POST",
            "/v1/peers",
            {
                "name": "B",
                "federation_url": "http://198.18.2.2:8700",
                "underlay_endpoint": "198.18.2.2",
                "key": key,
            },
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["message"]
        assert key not in r.text
        assert agent.admin("GET", "/v1/peers").json() == []
        logged = everything_logged(all_logs)
        assert key not in logged
        assert key[:40] not in logged
    finally:
        agent.ctx.store.dispose()


@pytest.fixture
def pg_app(postgres_url):
    """A bare app with the agent's error handling and routes that make the database fail in
    the ways that quote a value in PostgreSQL's message."""
    store = Store(postgres_url)
    store.migrate()
    app = FastAPI()
    errors.install(app)

    @app.post("/too-long")
    def too_long(body: dict) -> dict:
        with store.session() as s:
            s.add(m.Peer(name="B", federation_url="u", underlay_endpoint="e", key=body["v"]))
        return {}

    @app.post("/not-null")
    def not_null(body: dict) -> dict:
        with store.session() as s:  # DETAIL: Failing row contains (..., <key>)
            s.add(m.Peer(name=None, federation_url="u", underlay_endpoint="e", key=body["v"]))
        return {}

    @app.post("/quoted")
    def quoted(body: dict) -> dict:
        with store.session() as s:  # invalid input syntax for type integer: "<value>"
            s.execute(text("SELECT CAST(:v AS integer)"), {"v": body["v"]})
        return {}

    @app.post("/unexpected")
    def unexpected(body: dict) -> dict:
        with store.engine.connect() as conn:  # a database error no layer translates: a 500
            conn.execute(text("SELECT CAST(:v AS integer)"), {"v": body["v"]})
        return {}

    # raise_server_exceptions: an exception that reached the server (uvicorn logs its whole
    # text) would fail the test here
    yield TestClient(app, raise_server_exceptions=True)
    store.dispose()


@pytest.mark.parametrize(
    "path, status",
    [("/too-long", 422), ("/not-null", 409), ("/quoted", 422), ("/unexpected", 500)],
)
def test_database_errors_quote_no_value(pg_app, all_logs, path, status):
    value = "s3cr3t" + secrets.token_hex(147 if path == "/too-long" else 40)
    r = pg_app.post(path, json={"v": value})
    assert r.status_code == status, r.text
    assert value not in r.text
    logged = everything_logged(all_logs)
    assert value not in logged
    assert "s3cr3t" not in logged
    if status == 500:  # the traceback is still there, for whoever debugs it
        assert "Traceback" in logged and "database error 22P02; its text is not shown" in logged


def test_the_engine_hides_parameters_from_exception_text(postgres_url):
    """What `str(DataError)` holds: the statement, and no parameters. (Its database message
    may still quote a value, which is why the layers above never show that text.)"""
    store = Store(postgres_url)
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT CAST(:v AS varchar(3))::integer"), {"v": "x" * 10})
    except Exception as exc:  # the text is what is checked
        assert "hidden due to hide_parameters" in str(exc)
        assert "'xxxxxxxxxx'" not in str(exc)
    else:
        pytest.fail("the statement should fail")
    finally:
        store.dispose()


def test_agent_start_up_line_shows_no_database_password(tmp_path, postgres_databases):
    """agent.py logs the database URL at start: rendered with the password hidden (the test
    server trusts every password, so the agent does start with this one)."""
    password = "pw" + secrets.token_hex(12)
    url = postgres_databases().replace("postgres@", f"postgres:{password}@")
    agent = AgentProcess(tmp_path, database=url, log_level="info")
    try:
        r = httpx.get(f"{agent.url}/v1/status", headers={"Authorization": "Bearer x"})
        assert r.status_code == 401
    finally:
        agent.stop()
    logged = agent.log_path.read_text()
    assert "listening on" in logged and "postgres:***@" in logged, logged
    assert password not in logged


def test_describe_names_a_database_error_without_its_values(postgres_url):
    """For the logs and status fields of other layers (the reconciler's last_error): the
    database's own text of a NOT NULL violation is the whole row, the key in it."""
    store = Store(postgres_url)
    store.migrate()
    key = "s3cr3t" + secrets.token_hex(20)
    try:
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO peers (name, federation_url, underlay_endpoint, key, created_at)"
                    " VALUES (NULL, 'u', 'e', :k, now())"
                ),
                {"k": key},
            )
    except Exception as exc:  # what is said of it is checked
        assert key in str(exc)  # why describe() exists: hide_parameters does not cover this
        said = db_mod.describe(exc)
        assert key not in said
        assert said == "NotNullViolation (database error 23502; its text is not shown)"
    else:
        pytest.fail("the insert should fail")
    finally:
        store.dispose()
    assert db_mod.describe(ValueError("x")) == "ValueError: x"
