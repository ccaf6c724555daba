"""Tokens: rotation, an old refresh token refused, expiry, re-authorization, two processes at once,
encryption at rest, a changed client secret checked at once (and the older token table upgraded for
it), and no token in any log line, error or repr."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from cc_sync.constant_contact.errors import ConstantContactAuthError, ConstantContactError
from cc_sync.constant_contact.hook import ConstantContactHook
from cc_sync.constant_contact.state import tokens_table
from cc_sync.constant_contact.tokens import TokenCipher, credentials_hash
from include.cc_emulator import DEMO_CLIENT_SECRET, DEMO_REFRESH_TOKEN
from tests.constant_contact._workers import call_api_in_phases


def stored_row(hook):
    with hook.state.engine.begin() as conn:
        return conn.execute(
            sa.select(tokens_table).where(tokens_table.c.token_key == hook.tokens.token_key)
        ).one()


def stored_refresh_token(hook) -> str:
    return TokenCipher.from_airflow_config().decrypt(stored_row(hook).refresh_token)


def test_first_call_rotates_and_commits_the_new_refresh_token(emulator, make_hook, database_url):
    hook = make_hook(state_db_uri=database_url)
    hook.get_account_summary()
    current = emulator.admin.current_refresh_token()
    assert current != DEMO_REFRESH_TOKEN
    assert stored_refresh_token(hook) == current
    assert emulator.admin.counters()["token_refreshes"] == 1
    # A second hook (another task) on the same state uses the stored access token: no refresh.
    other = make_hook(state_db_uri=database_url)
    other.get_account_summary()
    assert emulator.admin.counters()["token_refreshes"] == 1
    assert other.tokens.refreshes == 0


def test_an_old_refresh_token_is_refused_with_a_clear_error(emulator, make_hook, tmp_path):
    make_hook().get_account_summary()  # rotates the demo token away
    stale = make_hook(state_db_uri=f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(ConstantContactAuthError) as caught:
        stale.get_account_summary()
    message = str(caught.value)
    assert "invalid_grant" in message
    assert "authorize" in message
    assert DEMO_REFRESH_TOKEN not in message
    assert stale.api_calls == 1  # no retry of a refused token


def test_an_expired_access_token_costs_exactly_one_refresh(emulator, make_hook, database_url):
    hook = make_hook(state_db_uri=database_url)
    hook.get_account_summary()
    emulator.admin.expire_access_tokens()
    for _ in range(3):
        hook.get_account_summary()
    counters = emulator.admin.counters()
    assert counters["token_refreshes"] == 2
    assert counters["unauthorized"] == 1


def test_a_token_about_to_expire_is_refreshed_before_use(emulator, make_hook):
    emulator.admin.configure(access_token_ttl_seconds=60)  # inside the hook's 120 s safety window
    hook = make_hook()
    hook.get_account_summary()
    hook.get_account_summary()
    counters = emulator.admin.counters()
    assert counters["token_refreshes"] == 2
    assert counters["unauthorized"] == 0


def test_a_reauthorized_connection_replaces_the_stored_token(emulator, make_hook, tmp_path):
    first = make_hook()
    first.get_account_summary()  # store: token T1
    # A person authorizes again: a new valid refresh token T2, which the store does not know.
    elsewhere = make_hook(
        state_db_uri=f"sqlite:///{tmp_path / 'elsewhere.db'}", refresh_token=stored_refresh_token(first)
    )
    elsewhere.get_account_summary()
    new_token = emulator.admin.current_refresh_token()
    reauthorized = make_hook(refresh_token=new_token)
    reauthorized.get_account_summary()
    assert reauthorized.tokens.refreshes == 1
    assert stored_refresh_token(reauthorized) == emulator.admin.current_refresh_token()


def test_two_processes_refresh_once_between_them(emulator, make_hook, database_url):
    hook = make_hook(state_db_uri=database_url)  # sets the connection in the environment
    hook.state  # creates the tables before the race  # noqa: B018
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=call_api_in_phases, args=(hook.cc_conn_id, barrier, 2, results)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        barrier.wait(timeout=120)  # phase 1: both start with no token at all
        barrier.wait(timeout=120)
        emulator.admin.expire_access_tokens()
        barrier.wait(timeout=120)  # phase 2: both hold an access token the server now refuses
        barrier.wait(timeout=120)
        reports = [results.get(timeout=120) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=60)
    assert [r["error"] for r in reports] == [None, None]
    per_phase = [sum(r["refreshes"][phase] for r in reports) for phase in range(2)]
    assert per_phase == [1, 1]
    assert emulator.admin.counters()["token_refreshes"] == 2


def test_tokens_are_encrypted_at_rest_with_the_fernet_key(emulator, make_hook, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    hook = make_hook()
    hook.get_account_summary()
    row = stored_row(hook)
    current = emulator.admin.current_refresh_token()
    assert row.refresh_token.startswith("fernet:")
    assert current not in row.refresh_token
    assert stored_refresh_token(hook) == current
    # A new key without the old one cannot read the row: a clear error, not a garbled token.
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    with pytest.raises(ConstantContactAuthError, match="cannot be decrypted"):
        make_hook().get_account_summary()


def test_no_token_or_secret_in_logs_errors_or_reprs(emulator, make_hook, caplog, capfd, tmp_path):
    caplog.set_level(logging.DEBUG)
    hook = make_hook()
    hook.get_account_summary()  # a refresh
    emulator.admin.expire_access_tokens()
    emulator.admin.set_faults(error_500_rate=0.5, seed=3)
    list(hook.iter_contacts(email="someone.private@example.org"))  # a 401, a refresh, retries
    emulator.admin.clear_faults()
    stale = make_hook(state_db_uri=f"sqlite:///{tmp_path / 'stale.db'}")
    with pytest.raises(ConstantContactError) as caught:  # a refused refresh token
        stale.get_account_summary()
    secrets = {
        DEMO_REFRESH_TOKEN,
        DEMO_CLIENT_SECRET,
        emulator.admin.current_refresh_token(),
        hook.tokens.access_token(),
    }
    printed = capfd.readouterr()  # the hook's own lines go through Airflow's structlog to stdout
    texts = [
        caplog.text,
        printed.out,
        printed.err,
        str(caught.value),
        repr(caught.value),
        repr(hook),
        repr(hook.tokens),
        repr(hook.settings),
        repr(hook.state.read_token(hook.tokens.token_key)),
    ]
    for secret in secrets:
        for text in texts:
            assert secret not in text
    ours = [r.getMessage() for r in caplog.records if "cc_sync" in r.name]
    assert any("Refreshed" in m for m in ours)
    assert not any("someone.private" in m for m in ours)
    assert "someone.private" not in printed.out
    assert "retrying" in printed.out  # the retries were logged, and are in what was checked


def test_a_lost_refresh_answer_is_explained_not_retried_forever(emulator, make_hook):
    """The token endpoint rotates the token, then the answer is lost: the spent token cannot be
    reused (that is rotation working), so the hook stops with the reason and the way out."""
    # Seed 1 draws "lost" for the first token request and "answered" for the retry.
    emulator.admin.set_faults(token_lost_answer_rate=0.5, seed=1)
    hook = make_hook()
    with pytest.raises(ConstantContactAuthError) as caught:
        hook.get_account_summary()
    message = str(caught.value)
    assert "answer with the new one was lost" in message
    assert "authorize" in message
    assert DEMO_REFRESH_TOKEN not in message


def test_connections_holding_one_authorization_share_its_rotating_token(make_hook) -> None:
    """Airflow's connection test (the UI's Test button) runs the hook under a throw-away
    connection id: its refresh must not leave the real connection with a spent refresh token."""
    tested = make_hook(conn_id="transient_connection_test")
    assert tested.test_connection()[0]  # refreshes: the emulator rotates the refresh token

    real = make_hook()
    assert real.cc_conn_id != tested.cc_conn_id
    assert real.get_account_summary()["organization_name"]
    assert real.tokens.token_key == tested.tokens.token_key


def _connection_with_secret(monkeypatch: pytest.MonkeyPatch, hook, secret: str) -> ConstantContactHook:
    """A new hook (the next task) on the same connection, its client secret edited in the form."""
    variable = f"AIRFLOW_CONN_{hook.cc_conn_id.upper()}"
    monkeypatch.setenv(variable, json.dumps({**json.loads(os.environ[variable]), "password": secret}))
    return ConstantContactHook(hook.cc_conn_id)


def test_a_changed_secret_is_checked_at_once_not_hidden_by_the_cached_access_token(
    emulator, make_hook, database_url, monkeypatch: pytest.MonkeyPatch
):
    good = make_hook(state_db_uri=database_url)
    good.get_account_summary()  # a valid access token is now stored for a day
    refreshes = emulator.admin.counters()["token_refreshes"]

    typo = _connection_with_secret(monkeypatch, good, "typo-in-the-secret")
    with pytest.raises(ConstantContactAuthError) as caught:
        typo.get_account_summary()

    assert caught.value.credential == "client"
    assert "refused the API key or client secret" in str(caught.value)
    assert "authorize" not in str(caught.value)  # re-authorizing would not help
    assert "typo-in-the-secret" not in str(caught.value)
    assert typo.api_calls == 1  # the refused exchange only: no API call rode on the old token
    # The refusal spent nothing: the right secret goes on with the stored token, no refresh.
    fixed = _connection_with_secret(monkeypatch, good, DEMO_CLIENT_SECRET)
    fixed.get_account_summary()
    assert fixed.tokens.refreshes == 0
    assert emulator.admin.counters()["token_refreshes"] == refreshes


def test_unchanged_credentials_reuse_the_stored_access_token(emulator, make_hook, database_url):
    make_hook(state_db_uri=database_url).get_account_summary()
    for _ in range(3):  # later tasks, each with its own hook and its own process-local cache
        task = make_hook(state_db_uri=database_url)
        task.get_account_summary()
        assert task.tokens.refreshes == 0
    assert emulator.admin.counters()["token_refreshes"] == 1


def _tokens_table_of_an_older_release(url: str) -> None:
    """The token table as releases before the credentials hash made it, holding a valid token."""
    old = sa.MetaData()
    sa.Table(
        tokens_table.name,
        old,
        sa.Column("token_key", sa.String(200), primary_key=True),
        sa.Column("refresh_token", sa.Text, nullable=True),
        sa.Column("access_token", sa.Text, nullable=True),
        sa.Column("access_expires_us", sa.BigInteger, nullable=True),
        sa.Column("seed_hash", sa.String(64), nullable=True),
        sa.Column("refreshed_us", sa.BigInteger, nullable=True),
        sa.Column("refresh_count", sa.Integer, nullable=False, default=0),
    )
    engine = sa.create_engine(url)
    try:
        old.create_all(engine)
    finally:
        engine.dispose()


def test_a_token_table_without_the_credentials_hash_is_upgraded_on_first_use(
    emulator, make_hook, database_url
):
    _tokens_table_of_an_older_release(database_url)

    hook = make_hook(state_db_uri=database_url)
    hook.get_account_summary()
    again = make_hook(state_db_uri=database_url)
    again.get_account_summary()

    columns = {c["name"] for c in sa.inspect(hook.state.engine).get_columns(tokens_table.name)}
    assert "credentials_hash" in columns
    assert stored_row(hook).credentials_hash == credentials_hash(emulator.client_id, DEMO_CLIENT_SECRET)
    assert (hook.tokens.refreshes, again.tokens.refreshes) == (1, 0)


def test_a_token_stored_by_an_older_release_is_refreshed_once_then_reused(emulator, make_hook):
    hook = make_hook()
    hook.get_account_summary()
    with hook.state.engine.begin() as conn:  # as the release before the hash left it
        conn.execute(tokens_table.update().values(credentials_hash=None))

    upgraded = make_hook()
    upgraded.get_account_summary()
    after = make_hook()
    after.get_account_summary()

    assert (upgraded.tokens.refreshes, after.tokens.refreshes) == (1, 0)
