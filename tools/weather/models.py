"""What the weather tools return and read: their configuration, the results, the WMO weather codes,
and the shapes of Open-Meteo's answers (only the fields we read)."""

import datetime as dt
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

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


class GeocodingResult(BaseModel):
    name: str
    latitude: float
    longitude: float
    country: str | None = None
    country_code: str | None = None
    admin1: str | None = None
    admin2: str | None = None
    population: int | None = None


class GeocodingResponse(BaseModel):
    # Open-Meteo omits "results" entirely when nothing matches.
    results: list[GeocodingResult] = []


class OpenMeteoCurrent(BaseModel):
    time: dt.datetime
    temperature_2m: float
    wind_speed_10m: float
    weather_code: int


class CurrentResponse(BaseModel):
    timezone: str
    current: OpenMeteoCurrent


class OpenMeteoDaily(BaseModel):
    time: list[dt.date]
    weather_code: list[int | None]
    temperature_2m_max: list[float | None]
    temperature_2m_min: list[float | None]
    precipitation_sum: list[float | None]


class DailyResponse(BaseModel):
    timezone: str
    daily: OpenMeteoDaily


def norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _dedupe(parts: list[str | None]) -> list[str | None]:
    """Drop repeats such as "Berlin, Berlin, Germany" -> "Berlin, Germany"."""
    seen: set[str] = set()
    kept: list[str | None] = []
    for part in parts:
        key = norm(part) if part else ""
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(part)
    return kept
