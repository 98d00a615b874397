"""Tests for tools/weather.py, with Open-Meteo replaced by httpx.MockTransport and recorded-shape fixtures."""

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest

from tools.errors import ToolError, TransientToolError
from tools.weather import (
    CurrentWeather,
    Forecast,
    ForecastDay,
    WeatherConfig,
    WeatherTools,
    describe_weather_code,
)

FIXTURES = Path(__file__).parent / "fixtures" / "open_meteo"

Handler = Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> object:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


GEOCODING_FIXTURES = {
    "berlin": "geocoding_berlin.json",
    "paris": "geocoding_paris.json",
    "springfield": "geocoding_springfield.json",
}


class FakeOpenMeteo:
    """Answers like Open-Meteo's two hosts and records every request it sees."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host, path, params = request.url.host, request.url.path, request.url.params
        if (host, path) == ("geocoding-api.open-meteo.com", "/v1/search"):
            name = GEOCODING_FIXTURES.get(params["name"].casefold(), "geocoding_no_results.json")
            return httpx.Response(200, json=fixture(name))
        if (host, path) == ("api.open-meteo.com", "/v1/forecast"):
            if "current" in params:
                return httpx.Response(200, json=fixture("forecast_current.json"))
            return httpx.Response(200, json=fixture("forecast_daily.json"))
        return httpx.Response(404, json={"error": True, "reason": "Not Found"})

    def params(self, index: int) -> dict[str, str]:
        return dict(self.requests[index].url.params)


def tools_with(handler: Handler) -> WeatherTools:
    return WeatherTools(transport=httpx.MockTransport(handler))


@pytest.mark.anyio
async def test_current_weather_resolves_the_place_and_reports_conditions() -> None:
    api = FakeOpenMeteo()

    weather = await tools_with(api).current_weather("Berlin")

    assert weather == CurrentWeather(
        location="Berlin, Germany",
        country="Germany",
        latitude=52.52437,
        longitude=13.41053,
        time=dt.datetime(2025, 1, 15, 14, 45),
        timezone="Europe/Berlin",
        temperature_c=3.4,
        wind_speed_kmh=14.8,
        weather_code=3,
        description="overcast",
    )
    assert api.params(0) == {"name": "Berlin", "count": "10", "language": "en", "format": "json"}
    assert api.params(1) == {
        "latitude": "52.52437",
        "longitude": "13.41053",
        "current": "temperature_2m,wind_speed_10m,weather_code",
        "temperature_unit": "celsius",
        "wind_speed_unit": "kmh",
        "timezone": "auto",
    }


@pytest.mark.anyio
async def test_forecast_returns_one_entry_per_requested_day() -> None:
    api = FakeOpenMeteo()

    forecast = await tools_with(api).forecast("Berlin", days=3)

    assert forecast == Forecast(
        location="Berlin, Germany",
        country="Germany",
        latitude=52.52437,
        longitude=13.41053,
        timezone="Europe/Berlin",
        days=[
            ForecastDay(
                date=dt.date(2025, 1, 15),
                temperature_min_c=-0.8,
                temperature_max_c=4.2,
                precipitation_mm=0.0,
                weather_code=3,
                description="overcast",
            ),
            ForecastDay(
                date=dt.date(2025, 1, 16),
                temperature_min_c=1.9,
                temperature_max_c=6.0,
                precipitation_mm=4.3,
                weather_code=61,
                description="slight rain",
            ),
            ForecastDay(
                date=dt.date(2025, 1, 17),
                temperature_min_c=2.4,
                temperature_max_c=5.1,
                precipitation_mm=1.2,
                weather_code=80,
                description="slight rain showers",
            ),
        ],
    )
    assert api.params(1)["forecast_days"] == "3"
    assert api.params(1)["daily"] == "weather_code,temperature_2m_max,temperature_2m_min,precipitation_sum"


@pytest.mark.anyio
async def test_forecast_result_is_json_serialisable() -> None:
    forecast = await tools_with(FakeOpenMeteo()).forecast("Berlin")

    assert Forecast.model_validate_json(forecast.model_dump_json()) == forecast


@pytest.mark.anyio
@pytest.mark.parametrize("days", [0, 17, -1, True])
async def test_forecast_days_out_of_range_is_refused_before_any_request(days: int) -> None:
    api = FakeOpenMeteo()

    with pytest.raises(ToolError, match=rf"invalid arguments for forecast: days: .*{days}"):
        await tools_with(api).forecast("Berlin", days=days)
    assert api.requests == []


@pytest.mark.anyio
async def test_a_dominant_namesake_wins_over_small_towns() -> None:
    weather = await tools_with(FakeOpenMeteo()).current_weather("Paris")

    assert (weather.location, weather.latitude, weather.longitude) == ("Paris, Île-de-France, France", 48.85341, 2.3488)


@pytest.mark.anyio
async def test_ambiguous_place_lists_the_candidates_and_asks_for_one() -> None:
    api = FakeOpenMeteo()

    with pytest.raises(ToolError) as raised:
        await tools_with(api).current_weather("Springfield")

    assert str(raised.value) == (
        "'Springfield' is ambiguous: several places have that name (Springfield, Missouri, United States; "
        "Springfield, Massachusetts, United States; Springfield, Illinois, United States; "
        "Springfield, Oregon, United States; Springfield, Ohio, United States). "
        'Call again with one of them, e.g. location="Springfield, Missouri, United States".'
    )
    assert len(api.requests) == 1  # no forecast was asked for


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("Springfield, Illinois", ("Springfield, Illinois, United States", 39.80172, -89.64371)),
        ("Springfield, Illinois, United States", ("Springfield, Illinois, United States", 39.80172, -89.64371)),
        ("springfield,  OREGON ", ("Springfield, Oregon, United States", 44.04624, -123.02203)),
        ("Paris, Texas", ("Paris, Texas, United States", 33.66094, -95.55551)),
        ("Paris, France", ("Paris, Île-de-France, France", 48.85341, 2.3488)),
        ("Paris, FR", ("Paris, Île-de-France, France", 48.85341, 2.3488)),
        ("Paris, Ontario", ("Paris, Ontario, Canada", 43.2, -80.38333)),
        ("Berlin, USA", None),  # two US Berlins of similar size: still ambiguous
    ],
)
async def test_a_qualifier_after_the_comma_selects_the_place(
    location: str, expected: tuple[str, float, float] | None
) -> None:
    api = FakeOpenMeteo()
    tools = tools_with(api)

    if expected is None:
        with pytest.raises(ToolError, match="Berlin, New Hampshire, United States; Berlin, Wisconsin"):
            await tools.current_weather(location)
        return
    weather = await tools.current_weather(location)

    assert (weather.location, weather.latitude, weather.longitude) == expected
    # Only the name goes to the geocoder; the qualifier filters its answers, so ask for more of them.
    assert api.params(0)["name"] == location.split(",")[0].strip()
    assert api.params(0)["count"] == "20"


@pytest.mark.anyio
async def test_a_qualifier_that_matches_nothing_lists_the_places_with_that_name() -> None:
    with pytest.raises(ToolError) as raised:
        await tools_with(FakeOpenMeteo()).current_weather("Paris, Narnia")

    assert str(raised.value) == (
        "No place named 'Paris' lies in 'Narnia'. Places with that name: Paris, Île-de-France, France; "
        "Paris, Texas, United States; Paris, Ontario, Canada; Paris, Tennessee, United States. "
        "Call again with one of them, or check the region/country spelling."
    )


@pytest.mark.anyio
async def test_unknown_place_suggests_a_more_specific_name() -> None:
    with pytest.raises(ToolError) as raised:
        await tools_with(FakeOpenMeteo()).forecast("Xyzzyville")

    assert str(raised.value) == (
        "No place named 'Xyzzyville' was found. Check the spelling or use a more specific or better known "
        "name (a city or town), e.g. 'Paris, France'."
    )
    assert not isinstance(raised.value, TransientToolError)


@pytest.mark.anyio
@pytest.mark.parametrize("location", ["", "   ", ", France"])
async def test_empty_place_name_is_refused_without_a_request(location: str) -> None:
    api = FakeOpenMeteo()

    with pytest.raises(ToolError, match=r"place name|location: String should have at least 1 character"):
        await tools_with(api).current_weather(location)
    assert api.requests == []


@pytest.mark.anyio
async def test_an_api_error_reason_reaches_the_caller() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=fixture("error_invalid_parameter.json"))

    with pytest.raises(ToolError) as raised:
        await tools_with(handler).current_weather("Berlin")

    assert str(raised.value) == (
        "Open-Meteo refused the request (HTTP 400): Cannot initialize WeatherVariable from invalid "
        "String value temperature_3m for key current"
    )
    assert not isinstance(raised.value, TransientToolError)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_rate_limits_and_server_errors_are_retryable(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="upstream trouble")

    with pytest.raises(TransientToolError, match=rf"HTTP {status}"):
        await tools_with(handler).current_weather("Berlin")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "message"),
    [
        (httpx.ConnectError("Name or service not known"), "Could not reach Open-Meteo (ConnectError)"),
        (httpx.ReadTimeout("timed out"), "Open-Meteo did not answer within 10 s"),
    ],
)
async def test_network_failures_are_retryable(error: httpx.TransportError, message: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(TransientToolError, match=re.escape(message)):
        await tools_with(handler).forecast("Berlin")


@pytest.mark.anyio
async def test_an_oversized_answer_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" + b"0," * 5000 + b"0]")

    tools = WeatherTools(WeatherConfig(max_response_bytes=1000), transport=httpx.MockTransport(handler))

    with pytest.raises(ToolError, match="more than 1000 bytes"):
        await tools.current_weather("Berlin")


@pytest.mark.anyio
async def test_an_answer_of_unexpected_shape_is_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host.startswith("geocoding"):
            return httpx.Response(200, json=fixture("geocoding_berlin.json"))
        return httpx.Response(200, json={"timezone": "GMT", "current": {"time": "2025-01-15T14:45"}})

    with pytest.raises(ToolError, match="unexpected shape"):
        await tools_with(handler).current_weather("Berlin")


@pytest.mark.anyio
async def test_the_injected_transport_survives_several_calls() -> None:
    api = FakeOpenMeteo()
    tools = tools_with(api)

    first = await tools.current_weather("Berlin")
    second = await tools.current_weather("Berlin")

    assert first == second
    assert len(api.requests) == 4


def test_weather_codes_have_descriptions_and_unknown_codes_say_so() -> None:
    assert [describe_weather_code(code) for code in (0, 45, 95, 99, 42)] == [
        "clear sky",
        "fog",
        "thunderstorm",
        "thunderstorm with heavy hail",
        "unknown weather code 42",
    ]


@pytest.mark.anyio
async def test_a_server_that_never_answers_hits_the_deadline() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    tools = WeatherTools(WeatherConfig(timeout_s=0.05), transport=httpx.MockTransport(handler))

    with pytest.raises(TransientToolError, match=r"did not answer within 0\.05 s"):
        await tools.current_weather("Berlin")
