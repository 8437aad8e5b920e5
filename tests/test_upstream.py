"""The upstream client: recorded responses through httpx.MockTransport, faults over loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from nivl import __version__
from nivl.errors import UpstreamError, UpstreamHTTPError
from nivl.upstream import PageRefused, ShortResults, Upstream, _retry_after

from .conftest import RECORDS, RESPONSES
from .replay import Replay, ReplayConfig, make_replay, serving

BASE = "http://upstream.test"
APOLLO = RESPONSES / "search__q=apollo+11__page=1__year_start=2013__src-aschleg.json"
ANDROMEDA = "search__q=andromeda__src-marianopezzutto.json"
EMPTY = RESPONSES / "search__q=earthdsdsds__media_type=image,video__empty__src-luisnomad.json"


def recorded(name: str) -> bytes:
    return (RESPONSES / name).read_bytes()


def client_for(handler: Callable[[httpx.Request], httpx.Response], **options: object) -> Upstream:
    sleeps: list[float] = []
    client = Upstream(BASE, transport=httpx.MockTransport(handler), sleep=sleeps.append, **options)
    client.sleeps = sleeps  # type: ignore[attr-defined]
    return client


@pytest.fixture
def replay() -> Iterator[Replay]:
    with serving(make_replay(RECORDS, RESPONSES)) as server:
        yield server


def test_pages_follow_next_links_on_the_configured_host_and_count_short_results() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        page = request.url.params.get("page")
        return httpx.Response(200, content=(APOLLO if page == "1" else EMPTY).read_bytes())

    with client_for(handler) as client:
        pages = list(client.pages({"q": "apollo 11", "year_start": "2013"}))
        assert [p.number for p in pages] == [1, 2]
        assert pages[0].total_hits == 654 and len(pages[0].items) == 100
        # The recorded next link points at images-api.nasa.gov; only its query is followed.
        assert all(url.host == "upstream.test" for url in seen)
        assert seen[1].params["page"] == "2" and seen[1].params["q"] == "apollo 11"
        with pytest.raises(ShortResults) as caught:
            list(client.items({"q": "apollo 11", "year_start": "2013"}))
        assert (caught.value.promised, caught.value.received) == (654, 100)


def test_items_verbatim_and_user_agent() -> None:
    agents: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        agents.append(request.headers["User-Agent"])
        return httpx.Response(200, content=recorded(ANDROMEDA))

    with client_for(handler) as client:
        items = list(client.items({"q": "andromeda"}))
    document = json.loads(recorded(ANDROMEDA))
    assert document["collection"]["metadata"]["total_hits"] == len(items)
    assert items == document["collection"]["items"]
    assert agents == [f"nivl/{__version__}"]  # no next link: one request


def test_retries_back_off_and_honour_retry_after() -> None:
    answers = [
        httpx.Response(503, json={"reason": "busy"}),
        httpx.Response(429, headers={"Retry-After": "7"}, json={"reason": "slow down"}),
        httpx.Response(500),
        httpx.Response(200, content=recorded("search__q=helmet__src-RobEato.json")),
    ]

    with client_for(lambda request: answers.pop(0), backoff=0.5) as client:
        page = client.search_page({"q": "helmet"})
        assert page.total_hits > 0
        assert client.requests == 4 and client.retried == 3
        first, second, third = client.sleeps  # type: ignore[attr-defined]
        assert 0.25 <= first <= 0.5  # backoff × 2**0 × jitter in [0.5, 1]
        assert second == 7.0  # Retry-After wins over the backoff
        assert 1.0 <= third <= 2.0  # backoff × 2**2 × jitter


def test_retry_after_is_capped_and_parsed_as_a_date() -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200, json={})]
    with client_for(lambda request: answers.pop(0), max_wait=5.0) as client:
        client.get("/search")
        assert client.sleeps == [5.0]  # type: ignore[attr-defined]
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (_retry_after(soon) or 0) <= 30
    assert _retry_after("soon") is None


def test_a_next_link_that_does_not_advance_is_an_error() -> None:
    body = recorded("search__q=helmet__src-RobEato.json")  # its next link says page=2
    with client_for(lambda request: httpx.Response(200, content=body)) as client:
        with pytest.raises(UpstreamError, match="does not advance"):
            list(client.pages({"q": "helmet"}, page=2))


def test_client_errors_fail_at_once_with_upstreams_reason() -> None:
    body = recorded("error__asset__1__404__src-aschleg.json")
    with client_for(lambda request: httpx.Response(404, content=body)) as client:
        assert client.asset_manifest("1") is None  # an asset upstream does not have
        with pytest.raises(UpstreamHTTPError) as caught:
            client.get("/asset/1")
    assert caught.value.status_code == 404
    assert "Could not find Asset with assetid=1" in str(caught.value)
    assert client.requests == 2 and client.retried == 0


def test_a_refused_deep_page_is_told_apart_from_a_bad_first_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "1" and request.url.params["q"] == "apollo 11":
            return httpx.Response(200, content=APOLLO.read_bytes())
        return httpx.Response(400, json={"reason": "Maximum number of results exceeded"})

    with client_for(handler) as client:
        with pytest.raises(PageRefused) as caught:
            list(client.pages({"q": "apollo 11"}))
        assert caught.value.page == 2 and caught.value.status_code == 400
        with pytest.raises(UpstreamHTTPError) as first:
            client.search_page({"q": "other"})
        assert not isinstance(first.value, PageRefused)
        assert client.retried == 0


def test_transport_errors_become_upstream_errors_after_the_retries() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with client_for(handler, retries=2) as client:
        with pytest.raises(UpstreamError) as caught:
            client.get("/search", {"q": "x"})
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert client.requests == 3 and len(client.sleeps) == 2  # type: ignore[attr-defined]


def test_at_most_concurrency_requests_in_flight() -> None:
    lock = threading.Lock()
    in_flight = 0
    most = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.02)
        with lock:
            in_flight -= 1
        return httpx.Response(200, json={})

    with client_for(handler, concurrency=2) as client:
        threads = [threading.Thread(target=client.get, args=("/x",)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert most == 2 and client.requests == 8


def test_rate_limit_spaces_request_starts() -> None:
    with client_for(lambda request: httpx.Response(200, json={}), rate=10.0) as client:
        for _ in range(4):
            client.get("/x")
        waits = client.sleeps  # type: ignore[attr-defined]
    # No real sleeping here, so each start is booked 0.1 s after the one before it.
    assert len(waits) == 3 and waits == sorted(waits) and 0.25 <= waits[-1] <= 0.31


def test_recorded_asset_manifest_and_metadata_location(replay: Replay) -> None:
    with Upstream(replay.url) as client:
        manifest = client.asset_manifest("PIA04778")
        location = client.location("metadata", "as11-40-5874")
        assert client.location("metadata", "no-such-id") is None
    assert manifest == recorded("asset__PIA04778__src-NickBansal.json").decode()
    assert location == "https://images-assets.nasa.gov/image/as11-40-5874/metadata.json"


@pytest.mark.parametrize("fault", ["drop", "slow", "503"])
def test_each_fault_is_retried_then_reported(replay: Replay, fault: str) -> None:
    replay.reset(ReplayConfig(fault_rate=1.0, faults=[fault], slow_seconds=0.5))
    with Upstream(replay.url, timeout=0.1, retries=1, sleep=lambda s: None) as client:
        with pytest.raises(UpstreamError) as caught:
            client.search_page({"q": "mars"})
    assert replay.requests == 2
    if fault == "drop":
        assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    elif fault == "slow":
        assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    else:
        assert isinstance(caught.value, UpstreamHTTPError) and caught.value.status_code == 503


def test_mixed_faults_are_survived(replay: Replay) -> None:
    replay.reset(ReplayConfig(fault_rate=0.5, seed=3, slow_seconds=0.3, retry_after="0"))
    with Upstream(replay.url, timeout=0.1, retries=10, sleep=lambda s: None) as client:
        items = list(client.items({"media_type": "audio", "page_size": "10"}))
    assert len(items) == 72 and replay.faults_served > 0
    # Every fault served cost a retry (a loaded machine may add timeouts of its own).
    assert client.retried >= replay.faults_served
