"""US state and Canadian province codes and names, for the mapping's ``state_format`` setting.

Constant Contact validates ``state_code`` against US states and Canadian provinces and keeps other
regions as free text, so only these two tables are needed; any other value passes through as it is.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the mapping imports this module when the send-list DAG file is parsed
    import pandas as pd

_CODE_TO_NAME: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana",
    "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland",
    "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri",
    "MT": "Montana", "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey",
    "NM": "New Mexico", "NY": "New York", "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio",
    "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island",
    "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah",
    "VT": "Vermont", "VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin",
    "WY": "Wyoming", "PR": "Puerto Rico", "GU": "Guam", "VI": "U.S. Virgin Islands",
    "AS": "American Samoa", "MP": "Northern Mariana Islands",
    "AB": "Alberta", "BC": "British Columbia", "MB": "Manitoba", "NB": "New Brunswick",
    "NL": "Newfoundland and Labrador", "NS": "Nova Scotia", "NT": "Northwest Territories",
    "NU": "Nunavut", "ON": "Ontario", "PE": "Prince Edward Island", "QC": "Quebec",
    "SK": "Saskatchewan", "YT": "Yukon",
}  # fmt: skip
_NAME_TO_CODE: dict[str, str] = {name.casefold(): code for code, name in _CODE_TO_NAME.items()}


class StateFormat(StrEnum):
    CODE = "code"
    NAME = "name"


def convert_states(values: pd.Series, to: StateFormat) -> pd.Series:
    """Turn codes into names or names into codes (case-insensitive); unknown values are kept."""
    text = values.astype("string")
    key = text.str.strip()
    if to == StateFormat.NAME:
        converted = key.str.upper().map(_CODE_TO_NAME)
    else:
        converted = key.str.casefold().map(_NAME_TO_CODE)
    return converted.astype("string").fillna(text)
