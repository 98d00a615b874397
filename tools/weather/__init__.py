"""Weather tools backed by Open-Meteo (free, no API key).

A place name is first resolved with the Open-Meteo geocoding API, then the forecast API is asked for
current conditions or a daily forecast at that place's coordinates.

`WeatherTools` holds the configuration; its bound async methods are the tools. An HTTP client is
created per call (never shared): Flyte runs task bodies on its own event loop thread and an
`httpx.AsyncClient` must not cross loops. Tests inject an `httpx.MockTransport` as `transport`.

The modules: models (configuration, results, WMO codes, Open-Meteo's answer shapes), places
(choosing the one place a name means); here, the tools and their HTTP calls.
"""

import json
import logging
from collections.abc import Mapping
from typing import Annotated, TypeVar

import anyio
import httpx
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from tools._http import BorrowedTransport, read_up_to
from tools.arguments import NOT_BOOL, checked
from tools.errors import ToolError, TransientToolError
from tools.weather.models import (
    FORECAST_URL,
    GEOCODING_URL,
    WMO_CODES,
    CurrentResponse,
    CurrentWeather,
    DailyResponse,
    Forecast,
    ForecastDay,
    GeocodingResponse,
    Place,
    WeatherConfig,
    describe_weather_code,
)
from tools.weather.places import MAX_CANDIDATES_SHOWN, pick, place_of, qualifies

__all__ = [
    "FORECAST_URL",
    "GEOCODING_URL",
    "WMO_CODES",
    "CurrentWeather",
    "Forecast",
    "ForecastDay",
    "Place",
    "WeatherConfig",
    "WeatherTools",
    "describe_weather_code",
]

logger = logging.getLogger(__name__)

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")


# The limits of the tools' arguments, written once: `checked` holds direct calls to them, the
# catalog plans and agents.
Location = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(
        description='Place name, optionally qualified by region or country: "Berlin", "Paris, France", '
        '"Springfield, Illinois".',
    ),
]


class WeatherTools:
    """Weather tools (Open-Meteo). The bound methods `current_weather` and `forecast` are the tools."""

    def __init__(
        self,
        config: WeatherConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport` replaces the network (tests pass `httpx.MockTransport`); the caller owns it."""
        self._config = config or WeatherConfig()
        self._transport = transport

    @checked
    async def current_weather(self, location: Location) -> CurrentWeather:
        """Get the current weather at a place: temperature (°C), wind speed (km/h) and conditions.

        Give a city or town name; add the region or country after a comma when the name is shared
        by several places (e.g. "Springfield, Illinois"). If the name is ambiguous the error lists
        the candidates: call again with one of them.
        """
        place = await self._resolve(location)
        raw = await self._get_json(
            self._config.forecast_url,
            {
                "latitude": place.latitude,
                "longitude": place.longitude,
                "current": "temperature_2m,wind_speed_10m,weather_code",
                "temperature_unit": "celsius",
                "wind_speed_unit": "kmh",
                "timezone": "auto",
            },
        )
        data = _parse(CurrentResponse, raw)
        return CurrentWeather(
            location=place.label,
            country=place.country,
            latitude=place.latitude,
            longitude=place.longitude,
            time=data.current.time,
            timezone=data.timezone,
            temperature_c=data.current.temperature_2m,
            wind_speed_kmh=data.current.wind_speed_10m,
            weather_code=data.current.weather_code,
            description=describe_weather_code(data.current.weather_code),
        )

    @checked
    async def forecast(
        self,
        location: Location,
        days: Annotated[int, Field(ge=1, le=16, description="Number of days, starting today (1-16)."), NOT_BOOL] = 3,
    ) -> Forecast:
        """Get a daily weather forecast for a place, one entry per day starting today.

        Each day has the min/max temperature (°C), total precipitation (mm) and conditions. Give a
        city or town name; add the region or country after a comma when the name is shared by
        several places. If the name is ambiguous the error lists the candidates: call again with one
        of them.
        """
        place = await self._resolve(location)
        raw = await self._get_json(
            self._config.forecast_url,
            {
                "latitude": place.latitude,
                "longitude": place.longitude,
                "daily": "weather_code,temperature_2m_max,temperature_2m_min,precipitation_sum",
                "forecast_days": days,
                "temperature_unit": "celsius",
                "precipitation_unit": "mm",
                "timezone": "auto",
            },
        )
        daily = _parse(DailyResponse, raw)
        d = daily.daily
        forecast_days = [
            ForecastDay(
                date=day,
                temperature_min_c=_at(d.temperature_2m_min, i),
                temperature_max_c=_at(d.temperature_2m_max, i),
                precipitation_mm=_at(d.precipitation_sum, i),
                weather_code=(code := _at(d.weather_code, i)),
                description=describe_weather_code(code) if code is not None else "no data",
            )
            for i, day in enumerate(d.time)
        ]
        return Forecast(
            location=place.label,
            country=place.country,
            latitude=place.latitude,
            longitude=place.longitude,
            timezone=daily.timezone,
            days=forecast_days,
        )

    # -- geocoding --

    async def _resolve(self, location: str) -> Place:
        """Turn "Name[, qualifier...]" into one place, or explain why it cannot."""
        name, *qualifiers = [part.strip() for part in location.split(",")]
        qualifiers = [q for q in qualifiers if q]
        if not name:
            raise ToolError(f"location {location!r} has no place name before the comma; write e.g. 'Paris, France'.")
        raw = await self._get_json(
            self._config.geocoding_url,
            # Ask for more candidates when a qualifier will filter them.
            {"name": name, "count": 20 if qualifiers else 10, "language": "en", "format": "json"},
        )
        results = _parse(GeocodingResponse, raw).results
        if not results:
            raise ToolError(
                f"No place named {name!r} was found. Check the spelling or use a more specific or better "
                "known name (a city or town), e.g. 'Paris, France'."
            )
        matches = [r for r in results if all(qualifies(r, q) for q in qualifiers)]
        if not matches:
            shown = "; ".join(place_of(r).label for r in results[:MAX_CANDIDATES_SHOWN])
            raise ToolError(
                f"No place named {name!r} lies in {', '.join(qualifiers)!r}. Places with that name: {shown}. "
                "Call again with one of them, or check the region/country spelling."
            )
        return pick(name, [place_of(r) for r in matches])

    # -- HTTP --

    async def _get_json(self, url: str, params: Mapping[str, str | int | float]) -> object:
        """GET an Open-Meteo endpoint and return its JSON, mapping failures to tool errors."""
        config = self._config
        transport = BorrowedTransport(self._transport) if self._transport is not None else None
        try:
            with anyio.fail_after(config.timeout_s):
                async with (
                    httpx.AsyncClient(
                        transport=transport,
                        timeout=config.timeout_s,
                        headers={"User-Agent": config.user_agent, "Accept": "application/json"},
                    ) as client,
                    client.stream("GET", url, params=params) as response,
                ):
                    body = await _read_capped(response, config.max_response_bytes)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise TransientToolError(
                f"Open-Meteo did not answer within {config.timeout_s:g} s; retry in a moment."
            ) from exc
        except httpx.TransportError as exc:
            logger.info("Open-Meteo request failed: %r", exc)
            raise TransientToolError(f"Could not reach Open-Meteo ({type(exc).__name__}); retry in a moment.") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientToolError(
                f"Open-Meteo answered HTTP {status} ({response.reason_phrase}); retry in a moment."
            )
        if status != 200:
            reason = _error_reason(body) or response.reason_phrase
            raise ToolError(f"Open-Meteo refused the request (HTTP {status}): {reason}")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ToolError("Open-Meteo answered with something that is not JSON; try again later.") from exc


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    """Read a streamed body, refusing one larger than `limit` bytes (decoded size counts)."""
    body, more = await read_up_to(response, limit)
    if more:
        raise ToolError(f"Open-Meteo sent more than {limit} bytes; ask for fewer days.")
    return body


def _error_reason(body: bytes) -> str | None:
    """Open-Meteo errors look like {"error": true, "reason": "..."}."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    reason = data.get("reason") if isinstance(data, dict) else None
    return str(reason)[:300] if reason else None


def _parse(model: type[_M], raw: object) -> _M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        logger.warning("Unexpected Open-Meteo answer: %s", exc)
        raise ToolError("Open-Meteo answered in an unexpected shape; try again later.") from exc


def _at(values: list[_T | None], index: int) -> _T | None:
    return values[index] if index < len(values) else None
