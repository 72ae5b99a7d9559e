"""A short soak in `make test`: the same driver as `make soak`, for about 20 seconds."""

from tests.soak import EXPECTED, report, soak


def test_soak_short_run_has_no_errors_and_loses_no_bytes(tmp_path):
    figures = soak(clients=6, seconds=20, max_requests=50_000, tmp=tmp_path)
    summary = report(figures)
    print(summary)  # shown with -s, and on failure
    assert figures["errors"] == [], summary
    assert figures["server_errors"] == 0, summary
    assert set(figures["operations"]) == set(EXPECTED), summary
    assert figures["operations"]["restore"]["statuses"].get(204, 0) > 0, summary
    assert figures["requests"] >= 500, summary
    assert figures["verified"] > 0, summary
    assert figures["verify_store"] == "store ok", summary
    assert "saving" not in figures["statuses"], summary
