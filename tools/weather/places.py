"""Choosing the one place a location names: qualifiers after the comma (region, country, ISO code
or a common short form), and a dominant namesake (Paris, France over Paris, Texas) or an error
listing the candidates (Springfield)."""

from collections.abc import Mapping

from tools.errors import ToolError
from tools.weather.models import GeocodingResult, Place, norm

# A place wins over its namesakes only when it is this many times more populous than the next one
# (Paris, France vs Paris, Texas); otherwise the caller must say which one (Springfield).
_DOMINANCE_RATIO = 5
MAX_CANDIDATES_SHOWN = 5
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


def qualifies(result: GeocodingResult, qualifier: str) -> bool:
    """True if `qualifier` names the result's country (name or ISO code) or region."""
    wanted = norm(qualifier)
    wanted = _COUNTRY_ALIASES.get(wanted, wanted)
    fields = (result.country, result.country_code, result.admin1, result.admin2)
    return any(field is not None and norm(field) == wanted for field in fields)


def place_of(result: GeocodingResult) -> Place:
    return Place(
        name=result.name,
        admin1=result.admin1 or None,
        country=result.country or None,
        country_code=result.country_code,
        latitude=result.latitude,
        longitude=result.longitude,
        population=result.population,
    )


def pick(name: str, places: list[Place]) -> Place:
    """Choose the place meant by `name`, or raise a ToolError listing the candidates."""
    # Exact-name matches are the strong ones; fuzzy matches ("Springfield Gardens") only count
    # when there is nothing better.
    strong = [p for p in places if norm(p.name) == norm(name)] or places
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
    shown = "; ".join(p.label for p in ranked[:MAX_CANDIDATES_SHOWN])
    raise ToolError(
        f"{name!r} is ambiguous: several places have that name ({shown}). "
        'Call again with one of them, e.g. location="' + ranked[0].label + '".'
    )
