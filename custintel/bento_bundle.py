"""Build the Bento bundle of a champion (`bentoml build` through its Python API): the service
code, params.yaml and the champion's model version, into the BentoML bento store under the data
directory (<data_dir>/bentoml/bentos). `bentoml serve <bento tag>` or `bentoml containerize`
then ship exactly that model.

Set promote.build_bento: false to skip it (the registry and serving do not need the bundle).
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SERVICE = "serving.service:CustomerIntelService"
BENTO_NAME = "custintel"
INCLUDE = ["custintel/**/*.py", "serving/**/*.py", "training/**/*.py", "feature_repo/**/*.py",
           "feature_repo/feature_store.yaml", "params.yaml", "pyproject.toml"]
EXCLUDE = ["tests/", "benchmarks/", "data/", "data-*/", "__pycache__/"]


def build_bento(model_tag: str) -> str:
    """Build the bundle serving `model_tag`; returns the bento's tag."""
    import bentoml

    bento = bentoml.bentos.build(
        SERVICE, name=BENTO_NAME, labels={"model": model_tag.replace(":", "-")},
        description=f"custintel customer-intelligence service, champion {model_tag}",
        include=INCLUDE, exclude=EXCLUDE, models=[model_tag],
        python={"requirements_txt": None, "packages": None, "lock_packages": False},
        build_ctx=str(PROJECT_ROOT))
    return str(bento.tag)
