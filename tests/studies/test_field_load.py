"""200 participants in threads against PostgreSQL, with double submits and a database restart in
the middle: no answer lost, none counted twice."""
import time

import pytest

from studies.load import field_load


@pytest.mark.slow
def test_two_hundred_participants_and_a_restart_lose_nothing(own_postgres):
    def outage():
        own_postgres.stop()
        time.sleep(2.0)
        own_postgres.start()

    r = field_load(own_postgres.url, participants=200, trials=5, outage=outage)
    assert r["outage"] and r["storage_errors"] > 0  # the restart happened while participants were answering
    assert r["gave_up"] == 0
    assert r["stored_rows"] == r["distinct_answers"] == r["expected_answers"] == 1000
    assert r["complete_participants"] == 200
    assert r["refused_duplicates"] > 0 and r["answers_sent"] == 1000 + r["refused_duplicates"]


def test_a_few_participants_on_sqlite(tmp_path):
    r = field_load(f"sqlite:///{tmp_path / 's.sqlite'}", participants=8, trials=3)
    assert r["stored_rows"] == r["distinct_answers"] == 24 and r["complete_participants"] == 8
