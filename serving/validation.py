"""Request models of the serving API (pydantic) and their limits.

Every malformed request is answered with 422 and errors that name the field (`loc`), e.g.
`customer_ids.3: Input should be a valid integer`; the server keeps serving.

- POST /predict          {"customer_ids": [non-negative 64-bit integers]}, 1..serve.max_ids_per_request ids
- POST /predict_features {"rows": [{feature: number or null, ...}]}, 1..serve.max_feature_rows_per_request
  rows, each with exactly the served model's features (missing and unknown names are listed)
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

MAX_ID = 2**63 - 1
CustomerId = Annotated[int, Field(strict=True, ge=0, le=MAX_ID)]  # JSON integers only: no "1", 1.5, true
FeatureValue = Annotated[float | None, Field(allow_inf_nan=False)]  # null = missing (the model imputes 0)


class RequestInvalid(Exception):
    """A request that fails validation; `errors` are pydantic-style dicts with `loc` and `msg`."""

    def __init__(self, errors: list[dict]):
        super().__init__(summary(errors))
        self.errors = errors


def summary(errors: list[dict], shown: int = 5) -> str:
    """One line naming the fields: 'customer_ids.0: Input should be a valid integer; ...'."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:shown]]
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    return "; ".join(parts) + more


def _plain(errors: list) -> list[dict]:
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]


class RequestModels:
    """The request models for the configured limits and the served model's features."""

    def __init__(self, max_ids: int, max_rows: int, feature_names: list[str]):
        self.feature_names = list(feature_names)
        self.max_ids, self.max_rows = max_ids, max_rows
        strict = ConfigDict(extra="forbid")
        self.predict = create_model(
            "PredictRequest", __config__=strict,
            customer_ids=(Annotated[list[CustomerId], Field(
                min_length=1, max_length=max_ids,
                description=f"Customer ids to score, at most {max_ids} per request.")], ...))
        self.features = create_model(
            "PredictFeaturesRequest", __config__=strict,
            rows=(Annotated[list[dict[str, FeatureValue]], Field(
                min_length=1, max_length=max_rows,
                description=f"Feature rows (at most {max_rows}), each with exactly the model's "
                            "features.")], ...))

    def _parse(self, model: type[BaseModel], body: bytes) -> BaseModel:
        try:
            return model.model_validate_json(body or b"null")
        except ValidationError as exc:
            raise RequestInvalid(_plain(exc.errors(include_url=False))) from None

    def customer_ids(self, body: bytes) -> list[int]:
        return self._parse(self.predict, body).customer_ids

    def feature_rows(self, body: bytes) -> pd.DataFrame:
        """Rows as a frame in the model's feature order (NaN for null); missing and unknown feature
        names are errors naming them."""
        rows = self._parse(self.features, body).rows
        expected, errors = set(self.feature_names), []
        for i, row in enumerate(rows):
            missing = [n for n in self.feature_names if n not in row]
            unknown = sorted(set(row) - expected)
            if missing:
                errors.append({"loc": ["rows", i], "type": "missing_features",
                               "msg": f"missing features {missing}"})
            if unknown:
                errors.append({"loc": ["rows", i], "type": "unknown_features",
                               "msg": f"unknown features {unknown} (the model uses {self.feature_names})"})
        if errors:
            raise RequestInvalid(errors)
        return pd.DataFrame.from_records(rows, columns=self.feature_names).astype("float64")
