"""What a licence id means, for the page: the licence's name, a plain-language summary and
where its legal code is published. The seller's own text (``rda market terms
--license-file``) is shown in full beside it; for an id we do not know, only that text."""

from __future__ import annotations

from typing import Any

from market.store import Terms

_KNOWN = {
    "CC-BY-4.0": (
        "Creative Commons Attribution 4.0 International",
        "You may copy, redistribute and adapt the data for any purpose, including "
        "commercially, as long as you give appropriate credit, link to the licence and say "
        "whether you made changes.",
        "https://creativecommons.org/licenses/by/4.0/legalcode",
    ),
    "CC-BY-NC-4.0": (
        "Creative Commons Attribution-NonCommercial 4.0 International",
        "You may copy, redistribute and adapt the data with credit, but not for commercial "
        "purposes.",
        "https://creativecommons.org/licenses/by-nc/4.0/legalcode",
    ),
    "CC-BY-SA-4.0": (
        "Creative Commons Attribution-ShareAlike 4.0 International",
        "You may copy, redistribute and adapt the data with credit; adaptations must be "
        "shared under the same licence.",
        "https://creativecommons.org/licenses/by-sa/4.0/legalcode",
    ),
    "CC0-1.0": (
        "Creative Commons Zero 1.0 Universal (public domain dedication)",
        "No rights reserved: use the data for any purpose without conditions.",
        "https://creativecommons.org/publicdomain/zero/1.0/legalcode",
    ),
    "ODbL-1.0": (
        "Open Data Commons Open Database License 1.0",
        "You may use, share and adapt the database with attribution; a public adapted "
        "database must be shared under the ODbL, and kept open.",
        "https://opendatacommons.org/licenses/odbl/1-0/",
    ),
}


def license_terms(terms: Terms) -> dict[str, Any]:
    name, summary, url = _KNOWN.get(terms.license, (terms.license, None, None))
    return {
        "id": terms.license,
        "name": name,
        "summary": summary,
        "url": url,
        "text": terms.license_text,
    }
