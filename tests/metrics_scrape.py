"""Reading GET /metrics as Prometheus does: the text format parsed by prometheus-client's own parser."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Scrape", "scrape"]


class Scrape:
    """One scrape: every sample by name and labels, every family by name (HELP/TYPE included)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families: dict[str, str] = {}  # family name -> type
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            assert family.name not in self.families, f"family {family.name} twice in one scrape"
            self.families[family.name] = family.type
            for sample in family.samples:
                self.samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))

    def names(self) -> set[str]:
        """Every series name a query can use (histograms' _bucket/_sum/_count, counters' _total),
        whether or not the family has a sample yet."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
        names = set(self.samples)
        for family, kind in self.families.items():
            names.update(family + suffix for suffix in suffixes.get(kind, ("",)))
        return names

    def value(self, name: str, **labels: str) -> float:
        """The one sample of ``name`` whose labels include ``labels`` (0 if none matches)."""
        found = [v for got, v in self.samples.get(name, []) if _includes(got, labels)]
        assert len(found) <= 1, f"{name}{labels}: {len(found)} samples"
        return found[0] if found else 0.0

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample of ``name`` whose labels include ``labels``."""
        return sum(v for got, v in self.samples.get(name, []) if _includes(got, labels))


def _includes(got: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(got.get(k) == v for k, v in wanted.items())


async def scrape(ops_url: str) -> Scrape:
    async with aiohttp.ClientSession() as http, http.get(f"{ops_url}/metrics") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        return Scrape(await resp.text())
