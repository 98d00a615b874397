"""Weather tools backed by Open-Meteo (free, no API key).

A place name is first resolved with the Open-Meteo geocoding API, then the forecast API is asked for
current conditions or a daily forecast at that place's coordinates.

`WeatherTools` holds the configuration; its bound async methods are the tools. An HTTP client is
created per call (never shared): Flyte runs task bodies on its own event loop thread and an
`httpx.AsyncClient` must not cross loops. Tests inject an `httpx.MockTransport` as `transport`.
"""

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Annotated, TypeVar

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from tools._http import BorrowedTransport, read_up_to
from tools.arguments import NOT_BOOL, checked
from tools.errors import ToolError, TransientToolError

logger = logging.getLogger(__name__)

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")

GEOCODING_URL = "https://geocoding-api.open-meteo.com/v1/search"
FORECAST_URL = "https://api.open-meteo.com/v1/forecast"

# WMO weather interpretation codes, as documented by Open-Meteo.
WMO_CODES: Mapping[int, str] = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "moderate drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "slight rain",
    63: "moderate rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "slight snowfall",
    73: "moderate snowfall",
    75: "heavy snowfall",
    77: "snow grains",
    80: "slight rain showers",
    81: "moderate rain showers",
    82: "violent rain showers",
    85: "slight snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with slight hail",
    99: "thunderstorm with heavy hail",
}

# A place wins over its namesakes only when it is this many times more populous than the next one
# (Paris, France vs Paris, Texas); otherwise the caller must say which one (Springfield).
_DOMINANCE_RATIO = 5
_MAX_CANDIDATES_SHOWN = 5
# Common short forms a model writes after the comma, mapped to ISO country codes.
_COUNTRY_ALIASES: Mapping[str, str] = {
    "usa": "us",
    "u.s.": "us",
    "u.s.a.": "us",
    "america": "us",
    "united states of america": "us",
    "uk": "gb",
    "u.k.": "gb",
    "britain": "gb",
    "great britain": "gb",
}


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


def describe_weather_code(code: int) -> str:
    """Human description of a WMO weather code (e.g. 3 -> "overcast")."""
    return WMO_CODES.get(code, f"unknown weather code {code}")


class WeatherConfig(BaseModel):
    """Where Open-Meteo lives and how long to wait for it."""

    model_config = ConfigDict(frozen=True)

    geocoding_url: str = GEOCODING_URL
    forecast_url: str = FORECAST_URL
    timeout_s: float = Field(default=10.0, gt=0, description="Deadline for each HTTP request, in seconds.")
    max_response_bytes: int = Field(default=1 << 20, gt=0, description="Larger API answers are refused.")
    user_agent: str = "planner-mcp (weather tool)"


class Place(BaseModel):
    """A place resolved by the geocoder."""

    name: str
    admin1: str | None = Field(default=None, description="First-level region (state, province).")
    country: str | None = None
    country_code: str | None = None
    latitude: float
    longitude: float
    population: int | None = None

    @property
    def label(self) -> str:
        """ "Name, Admin1, Country" without empty parts."""
        parts = [self.name, self.admin1, self.country]
        return ", ".join(part for part in _dedupe(parts) if part)


class CurrentWeather(BaseModel):
    """Current conditions at a place (temperatures in °C, wind in km/h)."""

    location: str = Field(description='Resolved place as "Name, Region, Country".')
    country: str | None
    latitude: float
    longitude: float
    time: dt.datetime = Field(description="Local time of the observation at the place (see timezone).")
    timezone: str
    temperature_c: float = Field(description="Air temperature 2 m above ground, °C.")
    wind_speed_kmh: float = Field(description="Wind speed 10 m above ground, km/h.")
    weather_code: int = Field(description="WMO weather interpretation code.")
    description: str = Field(description="The weather code in words, e.g. 'overcast'.")


class ForecastDay(BaseModel):
    """One day of a forecast (local dates; °C and mm)."""

    date: dt.date
    temperature_min_c: float | None
    temperature_max_c: float | None
    precipitation_mm: float | None = Field(description="Total precipitation (rain, showers, snow), mm.")
    weather_code: int | None
    description: str


class Forecast(BaseModel):
    """A daily forecast for a place, one entry per day starting today."""

    location: str = Field(description='Resolved place as "Name, Region, Country".')
    country: str | None
    latitude: float
    longitude: float
    timezone: str
    days: list[ForecastDay]


# -- Open-Meteo response shapes (only the fields we read) --


class _GeocodingResult(BaseModel):
    name: str
    latitude: float
    longitude: float
    country: str | None = None
    country_code: str | None = None
    admin1: str | None = None
    admin2: str | None = None
    population: int | None = None


class _GeocodingResponse(BaseModel):
    # Open-Meteo omits "results" entirely when nothing matches.
    results: list[_GeocodingResult] = []


class _Current(BaseModel):
    time: dt.datetime
    temperature_2m: float
    wind_speed_10m: float
    weather_code: int


class _CurrentResponse(BaseModel):
    timezone: str
    current: _Current


class _Daily(BaseModel):
    time: list[dt.date]
    weather_code: list[int | None]
    temperature_2m_max: list[float | None]
    temperature_2m_min: list[float | None]
    precipitation_sum: list[float | None]


class _DailyResponse(BaseModel):
    timezone: str
    daily: _Daily


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
        data = _parse(_CurrentResponse, raw)
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
        daily = _parse(_DailyResponse, raw)
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
        results = _parse(_GeocodingResponse, raw).results
        if not results:
            raise ToolError(
                f"No place named {name!r} was found. Check the spelling or use a more specific or better "
                "known name (a city or town), e.g. 'Paris, France'."
            )
        matches = [r for r in results if all(_qualifies(r, q) for q in qualifiers)]
        if not matches:
            shown = "; ".join(_place(r).label for r in results[:_MAX_CANDIDATES_SHOWN])
            raise ToolError(
                f"No place named {name!r} lies in {', '.join(qualifiers)!r}. Places with that name: {shown}. "
                "Call again with one of them, or check the region/country spelling."
            )
        return _pick(name, [_place(r) for r in matches])

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


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _dedupe(parts: list[str | None]) -> list[str | None]:
    """Drop repeats such as "Berlin, Berlin, Germany" -> "Berlin, Germany"."""
    seen: set[str] = set()
    kept: list[str | None] = []
    for part in parts:
        key = _norm(part) if part else ""
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(part)
    return kept


def _qualifies(result: _GeocodingResult, qualifier: str) -> bool:
    """True if `qualifier` names the result's country (name or ISO code) or region."""
    wanted = _norm(qualifier)
    wanted = _COUNTRY_ALIASES.get(wanted, wanted)
    fields = (result.country, result.country_code, result.admin1, result.admin2)
    return any(field is not None and _norm(field) == wanted for field in fields)


def _place(result: _GeocodingResult) -> Place:
    return Place(
        name=result.name,
        admin1=result.admin1 or None,
        country=result.country or None,
        country_code=result.country_code,
        latitude=result.latitude,
        longitude=result.longitude,
        population=result.population,
    )


def _pick(name: str, places: list[Place]) -> Place:
    """Choose the place meant by `name`, or raise a ToolError listing the candidates."""
    # Exact-name matches are the strong ones; fuzzy matches ("Springfield Gardens") only count
    # when there is nothing better.
    strong = [p for p in places if _norm(p.name) == _norm(name)] or places
    # Several entries can share one label (a city and its district); keep the most populous.
    by_label: dict[str, Place] = {}
    for place in strong:
        kept = by_label.get(place.label)
        if kept is None or (place.population or 0) > (kept.population or 0):
            by_label[place.label] = place
    ranked = sorted(by_label.values(), key=lambda p: p.population or 0, reverse=True)
    if len(ranked) == 1:
        return ranked[0]
    top, runner_up = ranked[0], ranked[1]
    top_pop, next_pop = top.population or 0, runner_up.population or 0
    if top_pop > 0 and top_pop >= _DOMINANCE_RATIO * next_pop:
        return top
    shown = "; ".join(p.label for p in ranked[:_MAX_CANDIDATES_SHOWN])
    raise ToolError(
        f"{name!r} is ambiguous: several places have that name ({shown}). "
        'Call again with one of them, e.g. location="' + ranked[0].label + '".'
    )
